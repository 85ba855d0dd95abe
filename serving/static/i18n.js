// Translation tables: one JSON file per language under /ui/i18n/, with identical keys (a test checks this).
// Text is only ever set with textContent, never innerHTML, so a translation cannot inject markup.

export const LANGUAGES = ["en", "zh-Hans"];
const tables = {};
let current = "en";

export async function loadLanguage(lang) {
  if (!LANGUAGES.includes(lang)) lang = "en";
  if (!tables[lang]) {
    const r = await fetch(`/ui/i18n/${lang}.json`, { credentials: "omit" });
    if (!r.ok) throw new Error(`translation table ${lang}: HTTP ${r.status}`);
    tables[lang] = await r.json();
  }
  if (!tables.en) tables.en = lang === "en" ? tables[lang] : await (await fetch("/ui/i18n/en.json")).json();
  current = lang;
  document.documentElement.lang = lang;
  return lang;
}

export function language() {
  return current;
}

/** The text of `key` in the current language with {name} placeholders filled; English, then the key, as fallback. */
export function t(key, params = {}) {
  const table = tables[current] || {};
  let s = key in table ? table[key] : (tables.en && key in tables.en ? tables.en[key] : key);
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function has(key) {
  return Boolean(tables[current] && key in tables[current]);
}

/** Set the text of every element under `root` that carries data-i18n (parameters in data-i18n-args, JSON). */
export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const args = el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : {};
    el.textContent = t(el.dataset.i18n, args);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

/** Create an element whose text follows the language (re-translated by applyTranslations). */
export function i18nText(tag, key, args, className) {
  const el = document.createElement(tag);
  el.dataset.i18n = key;
  if (args) el.dataset.i18nArgs = JSON.stringify(args);
  if (className) el.className = className;
  el.textContent = t(key, args || {});
  return el;
}

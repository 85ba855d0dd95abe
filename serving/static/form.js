// The input form, generated from the record contract (GET /ui/contract.json: the record schema of /docs.json plus
// groups, labels, units and the cross-field rules). Each field gets a visible label, its unit and allowed values or
// range, an "unknown" choice where the contract allows one, the rules that concern it, and a slot for the server's
// messages about it (a 422 answer's detail items are shown at the fields they name).

import { i18nText, t } from "./i18n.js";

let contract = null;

function fieldId(name) {
  return `f-${name}`;
}

function props(name) {
  return contract.record.properties[name];
}

function isNullable(p) {
  return Boolean(p.nullable);
}

function fmtNumber(x) {
  return Number.isInteger(x) ? String(x) : String(x);
}

function helpFor(f, p) {
  if (f.name === "patient_id") return ["form.id_hint", {}];
  if (p.type === "number" || p.type === "integer") {
    const args = { min: fmtNumber(p.minimum), max: fmtNumber(p.maximum) };
    if (p.multipleOf) return ["form.range_step", { ...args, step: p.multipleOf }];
    return ["form.range", args];
  }
  if (p.type === "string" && !p.enum && isNullable(p)) return ["form.optional_text", {}];
  return null;
}

function optionEl(value, key) {
  const o = i18nText("option", key);
  o.value = value;
  return o;
}

/** A control for one field (select, number or text input) named and labelled for the field. */
export function makeControl(name, id) {
  const p = props(name);
  let el;
  if (p.enum) {
    el = document.createElement("select");
    if (p.enum.length > 1 && !p.enum.includes("unknown")) el.append(optionEl("", "form.choose"));
    for (const v of p.enum) el.append(optionEl(v, `opt.${name}.${v}`));
    if (p.enum.includes("unknown")) el.value = "unknown";
  } else if (p.type === "boolean") {
    el = document.createElement("select");
    el.append(optionEl("", "form.choose"), optionEl("true", "opt.true"), optionEl("false", "opt.false"));
  } else if (p.type === "number" || p.type === "integer") {
    el = document.createElement("input");
    el.type = "number";
    el.inputMode = p.type === "integer" ? "numeric" : "decimal";
    if (p.minimum !== undefined) el.min = String(p.minimum);
    if (p.maximum !== undefined) el.max = String(p.maximum);
    el.step = p.multipleOf ? String(p.multipleOf) : p.type === "integer" ? "1" : "any";
  } else {
    el = document.createElement("input");
    el.type = "text";
    el.autocomplete = "off";
    el.spellcheck = false;
    if (p.maxLength) el.maxLength = p.maxLength;
  }
  el.id = id;
  el.name = name;
  el.dataset.field = name;
  return el;
}

/** Read a control's value as the JSON the API expects (null = missing/unknown). */
export function controlValue(name, el) {
  const p = props(name);
  const raw = el.value.trim();
  if (raw === "") return null;
  if (p.type === "boolean") return raw === "true";
  if (p.type === "number" || p.type === "integer") return Number(raw);
  return raw;
}

export function setControlValue(name, el, value) {
  if (value === null || value === undefined) {
    el.value = props(name).enum && props(name).enum.includes("unknown") ? "unknown" : "";
  } else {
    el.value = String(value);
  }
}

export function buildForm(c, container) {
  contract = c;
  container.replaceChildren();
  const rulesByField = {};
  for (const rule of c.rules) for (const f of rule.fields) (rulesByField[f] ||= []).push(rule);
  for (const group of c.groups) {
    const fs = document.createElement("fieldset");
    fs.className = `group group-${group}`;
    fs.append(i18nText("legend", `group.${group}`));
    for (const f of c.fields.filter((x) => x.group === group)) fs.append(fieldBlock(f, rulesByField[f.name] || []));
    container.append(fs);
  }
}

function ruleArgs(rule) {
  return rule.params && rule.params.ranges ? {} : rule.params || {};
}

function fieldBlock(f, rules) {
  const p = props(f.name);
  const id = fieldId(f.name);
  const wrap = document.createElement("div");
  wrap.className = "field";
  wrap.dataset.field = f.name;

  const label = document.createElement("label");
  label.htmlFor = id;
  label.append(i18nText("span", `field.${f.name}`, null, "label-text"));
  if (f.unit) {
    const unit = i18nText("span", `unit.${f.name}`, null, "unit");
    label.append(" (", unit, ")");
  }
  if (f.required) {
    const mark = document.createElement("abbr");
    mark.className = "req";
    mark.textContent = "*";
    mark.dataset.i18nTitle = "form.required_mark";
    mark.title = t("form.required_mark");
    label.append(" ", mark);
  }
  wrap.append(label);

  const control = makeControl(f.name, id);
  if (f.required) control.setAttribute("aria-required", "true");
  const describedBy = [];
  const row = document.createElement("div");
  row.className = "control-row";
  row.append(control);

  if (isNullable(p) && (p.type === "number" || p.type === "integer")) {
    // optional measurements: an explicit "unknown" (sent as null) beside the number
    const uid = `u-${f.name}`;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = uid;
    box.className = "unknown-box";
    box.dataset.unknownFor = f.name;
    const ul = document.createElement("label");
    ul.htmlFor = uid;
    ul.className = "unknown-label";
    ul.append(box, " ", i18nText("span", "form.unknown"));
    box.addEventListener("change", () => {
      control.disabled = box.checked;
      if (box.checked) control.value = "";
    });
    row.append(ul);
  }
  wrap.append(row);

  const help = helpFor(f, p);
  if (help) {
    const h = i18nText("p", help[0], help[1], "hint");
    h.id = `h-${f.name}`;
    wrap.append(h);
    describedBy.push(h.id);
  }
  rules.forEach((rule, i) => {
    const r = i18nText("p", `rule.${rule.id}`, ruleArgs(rule), "rule");
    r.id = `r-${f.name}-${i}`;
    wrap.append(r);
    describedBy.push(r.id);
  });
  const err = document.createElement("p");
  err.className = "field-error";
  err.id = `e-${f.name}`;
  err.hidden = true;
  wrap.append(err);
  describedBy.push(err.id);
  control.setAttribute("aria-describedby", describedBy.join(" "));
  return wrap;
}

/** The record as typed in the form (every contract field present; null where missing or unknown). */
export function readRecord() {
  const rec = {};
  for (const f of contract.fields) {
    const el = document.getElementById(fieldId(f.name));
    const unknown = document.getElementById(`u-${f.name}`);
    rec[f.name] = unknown && unknown.checked ? null : controlValue(f.name, el);
  }
  if (rec.center_id === null) delete rec.center_id;
  return rec;
}

export function fillRecord(rec) {
  for (const f of contract.fields) {
    const el = document.getElementById(fieldId(f.name));
    const unknown = document.getElementById(`u-${f.name}`);
    const v = rec[f.name];
    if (unknown) {
      unknown.checked = v === null || v === undefined;
      el.disabled = unknown.checked;
    }
    setControlValue(f.name, el, v);
  }
}

export function clearForm() {
  fillRecord({});
  for (const f of contract.fields) {
    const unknown = document.getElementById(`u-${f.name}`);
    if (unknown) {
      unknown.checked = false;
      document.getElementById(fieldId(f.name)).disabled = false;
    }
  }
  clearErrors();
}

export function clearErrors() {
  for (const el of document.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const summary = document.getElementById("form-summary");
  summary.hidden = true;
  summary.replaceChildren();
}

/**
 * Show a 422 answer's detail items at the fields they name (a consistency rule names several fields, comma
 * separated: the message is shown at each), and list them all in the summary at the top of the form, each linked
 * to its field. Items without a known field are listed in the summary only.
 */
export function showErrors(detail, fallbackMessage) {
  clearErrors();
  const summary = document.getElementById("form-summary");
  const items = detail.length ? detail : [{ field: null, message: fallbackMessage }];
  summary.append(i18nText("p", "form.errors_title", { count: items.length }));
  const list = document.createElement("ul");
  for (const d of items) {
    const names = (d.field || "").split(",").map((s) => s.trim()).filter((n) => contract.record.properties[n]);
    for (const name of names) {
      const err = document.getElementById(`e-${name}`);
      const line = document.createElement("span");
      line.textContent = d.message;
      if (!err.hidden) err.append(document.createElement("br"));
      err.append(line);
      err.hidden = false;
      document.getElementById(fieldId(name)).setAttribute("aria-invalid", "true");
    }
    const li = document.createElement("li");
    if (names.length) {
      const a = document.createElement("a");
      a.href = `#${fieldId(names[0])}`;
      a.textContent = `${names.map((n) => t(`field.${n}`)).join(", ")}: ${d.message}`;
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        document.getElementById(fieldId(names[0])).focus();
      });
      li.append(a);
    } else {
      li.textContent = d.field ? `${d.field}: ${d.message}` : d.message;
    }
    list.append(li);
  }
  summary.append(list);
  summary.hidden = false;
  summary.focus();
}

/** Text of a value as shown to a reader (option labels translated). */
export function displayValue(name, value) {
  if (value === null || value === undefined) return t("form.unknown");
  const p = props(name);
  if (p.enum) return t(`opt.${name}.${value}`);
  if (p.type === "boolean") return t(value ? "opt.true" : "opt.false");
  return String(value);
}

// nbrisk risk calculator: sign-in, the contract-generated form, results, what-if comparison, PDF and print.
// Plain ES modules from this origin; the Content-Security-Policy (default-src 'self') forbids anything else.

import * as api from "./api.js";
import { countsOf100, iconArray, pct, stackedChart, survivalChart } from "./charts.js";
import * as form from "./form.js";
import { applyTranslations, i18nText, language, loadLanguage, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const LANG_KEY = "nbrisk.lang";
const OUTCOMES = ["relapse", "trm", "efs", "os"];

const state = {
  contract: null,
  card: null, // GET /v1/model answer
  record: null, // the inputs of the results shown
  answer: null, // POST /v1/risk answer for `record`
  whatif: null, // {answer, changes}
};

// ------------------------------------------------------------------------------------------------ start-up
async function init() {
  const params = new URLSearchParams(location.search);
  const lang = params.get("lang") || sessionStorage.getItem(LANG_KEY) || "en";
  try {
    await loadLanguage(lang);
    const r = await fetch("/ui/contract.json", { credentials: "omit" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    state.contract = await r.json();
  } catch (e) {
    $("loading").textContent = t("app.load_error", { error: e.message });
    return;
  }
  $("lang").value = language();
  form.buildForm(state.contract, $("fields"));
  buildWhatifRows();
  buildIconHorizons();
  applyTranslations();
  updateReviewNote();
  wireEvents();
  $("loading").hidden = true;
  const key = api.getKey();
  if (key) {
    try {
      state.card = await api.modelCard(key);
      showCalculator();
      return;
    } catch (e) {
      if (e.status === 503) {
        showCalculator();
        return;
      }
      api.forgetKey();
    }
  }
  showSignIn();
}

function wireEvents() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("signout").addEventListener("click", () => signOut("signin.signed_out"));
  $("patient-form").addEventListener("submit", onCalculate);
  $("fill-example").addEventListener("click", () => {
    form.fillRecord(state.contract.record.example);
    form.clearErrors();
  });
  $("clear-form").addEventListener("click", () => form.clearForm());
  $("lang").addEventListener("change", onLanguage);
  $("show-intervals").addEventListener("change", renderCharts);
  $("icon-horizon").addEventListener("change", renderIcons);
  $("whatif-run").addEventListener("click", onWhatif);
  $("download-pdf").addEventListener("click", onPdf);
  $("print").addEventListener("click", () => window.print());
}

function updateReviewNote() {
  const note = $("review-note");
  note.hidden = !t("meta.review_note");
}

async function onLanguage() {
  await loadLanguage($("lang").value);
  sessionStorage.setItem(LANG_KEY, language());
  applyTranslations();
  updateReviewNote();
  renderModelLine();
  if (state.answer) renderResults();
  if (state.whatif) renderWhatif();
}

// ------------------------------------------------------------------------------------------------ sign-in
function showSignIn(messageKey) {
  $("calculator").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  const msg = $("signin-message");
  msg.textContent = messageKey ? t(messageKey) : "";
  msg.className = messageKey === "signin.signed_out" ? "info" : "error";
  $("api-key").focus();
}

function showCalculator() {
  $("signin").hidden = true;
  $("calculator").hidden = false;
  $("signout").hidden = false;
  renderModelLine();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const input = $("api-key");
  const key = input.value.trim();
  const msg = $("signin-message");
  msg.className = "error";
  if (!key) {
    msg.textContent = t("signin.empty");
    input.focus();
    return;
  }
  msg.textContent = t("signin.checking");
  try {
    state.card = await api.modelCard(key);
  } catch (e) {
    if (e.status === 401) {
      msg.textContent = t("signin.rejected");
      input.select();
      return;
    }
    if (e.status !== 503) {
      msg.textContent = e.status ? t("error.server", { status: e.status, error: e.message }) : t("error.network");
      return;
    }
    state.card = null; // a valid key, but no model yet: sign in and say so
  }
  api.setKey(key);
  input.value = "";
  msg.textContent = "";
  showCalculator();
  if (!state.card) $("calc-status").textContent = t("error.unavailable", { error: "503" });
  $("form-title").scrollIntoView();
  const first = document.querySelector("#fields input, #fields select");
  if (first) first.focus();
}

function signOut(messageKey) {
  api.forgetKey();
  state.card = null;
  state.record = null;
  state.answer = null;
  state.whatif = null;
  form.clearForm();
  $("results").hidden = true;
  $("whatif-result").replaceChildren();
  $("synthetic-banner").hidden = true;
  showSignIn(messageKey);
}

function modelInfo() {
  return (state.answer && state.answer.model) || (state.card && state.card.model) || null;
}

function renderModelLine() {
  const m = modelInfo();
  const banner = $("synthetic-banner");
  if (!m) {
    $("model-line").textContent = "";
    banner.hidden = true;
    return;
  }
  const text = t("model.line", {
    name: m.name,
    version: m.version ?? "?",
    alias: m.alias ? t("model.alias", { alias: m.alias }) : "",
    trained: (m.trained_at || "?").slice(0, 10),
  });
  $("model-line").textContent = text;
  $("results-model").textContent = text;
  const synthetic = m.synthetic_training_data || m.label;
  banner.hidden = !synthetic;
  // the label exactly as the service gives it, translated beside it where a translation exists
  banner.textContent = synthetic ? labelText(m) : "";
}

function labelText(m) {
  const label = m.label || "SYNTHETIC — not for clinical use";
  return language() === "en" ? label : `${label} · ${t("synthetic.label")}`;
}

// ------------------------------------------------------------------------------------------------ calculate
async function onCalculate(ev) {
  ev.preventDefault();
  const started = ev.timeStamp || performance.now();
  const record = form.readRecord();
  const status = $("calc-status");
  status.textContent = t("form.calculating");
  $("calculate").disabled = true;
  try {
    const answer = await api.risk([record], state.contract.curve_horizons_months);
    form.clearErrors();
    state.record = record;
    state.answer = answer;
    state.whatif = null;
    $("whatif-result").replaceChildren();
    $("whatif-message").textContent = "";
    resetWhatifValues();
    renderResults();
    status.textContent = t("results.done");
    // "numbers on screen": measured after the browser has painted the frame with the table
    requestAnimationFrame(() =>
      setTimeout(() => {
        const ms = performance.now() - started;
        $("results").dataset.calcMs = ms.toFixed(1);
        performance.measure("nbrisk:calculate-to-numbers", { start: started, end: performance.now() });
      }, 0),
    );
    $("results").focus();
  } catch (e) {
    status.textContent = "";
    handleError(e, (detail, message) => form.showErrors(detail, message));
  } finally {
    $("calculate").disabled = false;
  }
}

function handleError(e, show) {
  if (e.status === 401) {
    signOut("signin.expired");
  } else if (e.status === 422 || e.status === 400 || e.status === 413) {
    show(e.detail, e.message);
  } else if (e.status === 503) {
    show([], t("error.unavailable", { error: e.detail.map((d) => d.message).join("; ") || e.message }));
  } else if (e.status) {
    show([], t("error.server", { status: e.status, error: e.message }));
  } else {
    show([], t("error.network"));
  }
}

// ------------------------------------------------------------------------------------------------ results
function renderResults() {
  const res = state.answer.results[0];
  $("results").hidden = false;
  const m = state.answer.model;
  const synth = $("results-synthetic");
  synth.hidden = !(m.synthetic_training_data || m.label);
  synth.textContent = synth.hidden ? "" : labelText(m);
  renderModelLine();
  renderRiskGroup(res);
  renderWarnings(res);
  $("results-table").replaceChildren(...resultsTable(res, "t").children);
  renderCharts();
  renderIcons();
  renderInputs();
}

function cellText(band, i) {
  return band.lower ? `${pct(band.lower[i])}–${pct(band.upper[i])}` : t("results.no_interval");
}

/** The table at the contract's table months: each cell the estimate and its 95% interval, as percentages. */
function resultsTable(res, prefix, short = false) {
  const table = document.createElement("table");
  const head = document.createElement("thead");
  const hr = document.createElement("tr");
  const corner = i18nText("th", "results.outcome");
  corner.scope = "col";
  hr.append(corner);
  const months = state.contract.table_horizons_months;
  for (const mo of months) {
    const th = i18nText("th", "results.months", { months: mo });
    th.scope = "col";
    hr.append(th);
  }
  head.append(hr);
  const body = document.createElement("tbody");
  for (const outcome of OUTCOMES) {
    const tr = document.createElement("tr");
    tr.className = `row-${outcome}`;
    const th = i18nText("th", short ? `chart.${outcome}` : `results.${outcome}`);
    th.scope = "row";
    tr.append(th);
    for (const mo of months) {
      const i = res.horizons_months.indexOf(mo);
      const band = res[outcome];
      const td = document.createElement("td");
      td.id = `${prefix}-${outcome}-${mo}`;
      td.dataset.outcome = outcome;
      td.dataset.horizon = String(mo);
      const est = document.createElement("span");
      est.className = "est";
      est.textContent = pct(band.estimate[i]);
      const ci = document.createElement("span");
      ci.className = "ci";
      ci.textContent = `(${cellText(band, i)})`;
      td.append(est, " ", ci);
      tr.append(td);
    }
    body.append(tr);
  }
  table.append(head, body);
  return table;
}

function renderRiskGroup(res) {
  const box = $("risk-group");
  box.replaceChildren();
  const i = res.horizons_months.indexOf(24);
  const group = res.risk_group;
  const h = document.createElement("p");
  h.className = `risk-title risk-${group}`;
  h.textContent = t("risk.title", { group: t(`risk.${group}`) });
  box.append(h);
  if (i >= 0) {
    const efs = res.efs.estimate[i];
    const p = document.createElement("p");
    p.textContent = t("risk.explain", { efs: pct(efs), n: countsOf100([1 - efs, efs])[1] });
    box.append(p);
  }
  const cut = state.card && state.card.specification && state.card.specification.risk_cutoffs_efs_2y;
  if (cut && cut.length === 2) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = t("risk.cutoffs", { low: pct(cut[0]), high: pct(cut[1]) });
    box.append(p);
  }
}

function renderWarnings(res) {
  const box = $("warnings");
  box.replaceChildren();
  if (!res.warnings || !res.warnings.length) return;
  box.append(i18nText("h3", "results.warnings"));
  const ul = document.createElement("ul");
  for (const w of res.warnings) {
    const li = document.createElement("li");
    li.textContent = w;
    ul.append(li);
  }
  box.append(ul);
}

function renderCharts() {
  if (!state.answer) return;
  const res = state.answer.results[0];
  const show = $("show-intervals").checked;
  const months = state.contract.table_horizons_months;
  $("stack-chart").replaceChildren(stackedChart(res, months, show), i18nText("p", "chart.interval_note", null, "hint"));
  $("surv-chart").replaceChildren(survivalChart(res, months, show));
  if (state.whatif) renderWhatif();
}

function buildIconHorizons() {
  const sel = $("icon-horizon");
  for (const mo of state.contract.table_horizons_months) {
    const o = i18nText("option", "results.months", { months: mo });
    o.value = String(mo);
    sel.append(o);
  }
  sel.value = "24";
}

function iconCounts(res, months) {
  const i = res.horizons_months.indexOf(months);
  return countsOf100([res.relapse.estimate[i], res.trm.estimate[i], res.efs.estimate[i]]);
}

function renderIcons() {
  if (!state.answer) return;
  const res = state.answer.results[0];
  const months = Number($("icon-horizon").value);
  const counts = iconCounts(res, months);
  const holder = $("icon-array");
  holder.replaceChildren(iconArray(counts));
  holder.dataset.counts = counts.join(",");
  const legend = document.createElement("ul");
  legend.className = "icon-legend";
  for (const [cls, key, n] of [["icon-relapse", "chart.relapse", counts[0]], ["icon-trm", "chart.trm", counts[1]], ["icon-efs", "chart.event_free", counts[2]]]) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = `swatch ${cls}`;
    li.append(sw, `${t(key)}: ${n}`);
    legend.append(li);
  }
  holder.append(legend);
  $("icon-text").textContent = t("icons.text", { months, relapse: counts[0], trm: counts[1], efs: counts[2] });
}

function renderInputs() {
  const dl = $("inputs-list");
  dl.replaceChildren();
  for (const f of state.contract.fields) {
    if (!(f.name in state.record)) continue;
    const dt = document.createElement("dt");
    dt.textContent = t(`field.${f.name}`);
    const dd = document.createElement("dd");
    dd.textContent = form.displayValue(f.name, state.record[f.name]);
    dl.append(dt, dd);
  }
}

// ------------------------------------------------------------------------------------------------ what-if
const WHATIF_ROWS = 2;

function buildWhatifRows() {
  const holder = $("whatif-rows");
  const candidates = [
    ...state.contract.whatif_fields,
    ...state.contract.fields.map((f) => f.name).filter((n) => !state.contract.whatif_fields.includes(n) && !["patient_id", "center_id", "inrg_stage"].includes(n)),
  ];
  for (let k = 1; k <= WHATIF_ROWS; k++) {
    const row = document.createElement("div");
    row.className = "whatif-row";
    const fs = document.createElement("fieldset");
    fs.append(i18nText("legend", "whatif.change", { n: k }));
    const fl = i18nText("label", "whatif.field");
    fl.htmlFor = `wf-${k}`;
    const sel = document.createElement("select");
    sel.id = `wf-${k}`;
    const none = i18nText("option", "whatif.none");
    none.value = "";
    sel.append(none);
    for (const name of candidates) {
      const o = i18nText("option", `field.${name}`);
      o.value = name;
      sel.append(o);
    }
    sel.value = k === 1 ? state.contract.whatif_fields[0] : "";
    const vl = i18nText("label", "whatif.value");
    vl.htmlFor = `wv-${k}`;
    const valueHolder = document.createElement("span");
    valueHolder.className = "whatif-value";
    const setValueControl = () => {
      const name = sel.value;
      if (!name) {
        const dis = document.createElement("select");
        dis.id = `wv-${k}`;
        dis.disabled = true;
        valueHolder.replaceChildren(dis);
        return;
      }
      const c = form.makeControl(name, `wv-${k}`);
      c.removeAttribute("name");
      const current = state.record ? state.record[name] : document.getElementById(`f-${name}`).value;
      form.setControlValue(name, c, current);
      valueHolder.replaceChildren(c);
    };
    sel.addEventListener("change", setValueControl);
    setValueControl();
    fs.append(fl, sel, vl, valueHolder);
    row.append(fs);
    holder.append(row);
  }
}

function resetWhatifValues() {
  for (let k = 1; k <= WHATIF_ROWS; k++) $(`wf-${k}`).dispatchEvent(new Event("change"));
}

async function onWhatif() {
  const msg = $("whatif-message");
  msg.textContent = "";
  if (!state.record) return;
  const changed = { ...state.record };
  const changes = [];
  for (let k = 1; k <= WHATIF_ROWS; k++) {
    const name = $(`wf-${k}`).value;
    if (!name) continue;
    const value = form.controlValue(name, $(`wv-${k}`));
    if (value !== state.record[name]) {
      changed[name] = value;
      changes.push([name, value]);
    }
  }
  if (!changes.length) {
    msg.textContent = t("whatif.need_change");
    return;
  }
  changed.patient_id = `${String(state.record.patient_id).slice(0, 56)}-whatif`;
  $("whatif-run").disabled = true;
  try {
    const answer = await api.risk([state.record, changed], state.contract.curve_horizons_months);
    state.whatif = { answer, changes };
    renderWhatif();
  } catch (e) {
    state.whatif = null;
    $("whatif-result").replaceChildren();
    handleError(e, (detail, message) => {
      const items = detail.length ? detail : [{ field: null, message }];
      msg.textContent = items
        .map((d) => t("whatif.problem", { message: d.field ? `${d.field.split(",").map((n) => t(`field.${n}`)).join(", ")}: ${d.message}` : d.message }))
        .join(" ");
    });
  } finally {
    $("whatif-run").disabled = false;
  }
}

function renderWhatif() {
  const { answer, changes } = state.whatif;
  const show = $("show-intervals").checked;
  const months = state.contract.table_horizons_months;
  const cols = [
    [t("whatif.current"), answer.results[0], "wa"],
    [`${t("whatif.scenario")}: ${changes.map(([n, v]) => `${t(`field.${n}`)} = ${form.displayValue(n, v)}`).join("; ")}`, answer.results[1], "wb"],
  ];
  const out = [];
  for (const [title, res, prefix] of cols) {
    const col = document.createElement("div");
    col.className = "scenario";
    col.id = `scenario-${prefix}`;
    const h = document.createElement("h4");
    h.textContent = title;
    h.id = `${prefix}-title`;
    const group = document.createElement("p");
    group.className = `risk-title risk-${res.risk_group}`;
    group.textContent = t("risk.title", { group: t(`risk.${res.risk_group}`) });
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    // a table wider than its column scrolls: keyboard users must be able to reach and scroll it
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-labelledby", h.id);
    wrap.append(resultsTable(res, prefix, true)); // short row names: two tables share the width
    col.append(h, group, stackedChart(res, months, show, true), wrap);
    out.push(col);
  }
  $("whatif-result").replaceChildren(...out);
}

// ------------------------------------------------------------------------------------------------ PDF
async function onPdf() {
  if (!state.record) return;
  const status = $("pdf-status");
  status.textContent = t("results.pdf_busy");
  $("download-pdf").disabled = true;
  try {
    const blob = await api.reportPdf(state.record);
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `nbrisk-report-${state.record.patient_id || "patient"}.pdf`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = t("results.pdf_done");
  } catch (e) {
    status.textContent = "";
    handleError(e, (detail, message) => {
      status.textContent = detail.length ? detail.map((d) => d.message).join("; ") : message;
    });
  } finally {
    $("download-pdf").disabled = false;
  }
}

init();

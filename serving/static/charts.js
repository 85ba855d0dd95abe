// Charts drawn as SVG with the DOM (no charting library, no inline style: colours come from app.css classes).
// Every chart is an <svg role="img"> with a title and a description; the results table carries the same numbers
// as text for screen readers and for print.

import { t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
let uid = 0;

function svgEl(tag, attrs = {}, cls) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (cls) el.setAttribute("class", cls);
  return el;
}

export function pct(x, digits = 1) {
  return `${(100 * x).toFixed(digits)}%`;
}

function frame(width, height, titleText, descText) {
  const id = `chart-${++uid}`;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    preserveAspectRatio: "xMidYMid meet",
  });
  const title = svgEl("title", { id: `${id}-t` });
  title.textContent = titleText;
  const desc = svgEl("desc", { id: `${id}-d` });
  desc.textContent = descText;
  svg.append(title, desc);
  return svg;
}

function axes(svg, x, y, box, maxMonth) {
  const g = svgEl("g", {}, "axes");
  for (let p = 0; p <= 100; p += 20) {
    const yy = y(p / 100);
    g.append(svgEl("line", { x1: box.left, x2: box.right, y1: yy, y2: yy }, p === 0 ? "axis" : "grid"));
    const lab = svgEl("text", { x: box.left - 6, y: yy + 4, "text-anchor": "end" }, "tick");
    lab.textContent = `${p}%`;
    g.append(lab);
  }
  for (let m = 0; m <= maxMonth; m += 12) {
    const xx = x(m);
    g.append(svgEl("line", { x1: xx, x2: xx, y1: box.bottom, y2: box.bottom + 4 }, "axis"));
    const lab = svgEl("text", { x: xx, y: box.bottom + 18, "text-anchor": "middle" }, "tick");
    lab.textContent = String(m);
    g.append(lab);
  }
  const xl = svgEl("text", { x: (box.left + box.right) / 2, y: box.bottom + 34, "text-anchor": "middle" }, "axis-label");
  xl.textContent = t("chart.months_axis");
  g.append(xl);
  svg.append(g);
}

function scales(width, height, maxMonth) {
  const box = { left: 48, right: width - 20, top: 12, bottom: height - 64 };
  const x = (m) => box.left + ((box.right - box.left) * m) / maxMonth;
  const y = (p) => box.bottom - (box.bottom - box.top) * p;
  return { box, x, y };
}

function pathFrom(points) {
  return points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(2)},${py.toFixed(2)}`).join(" ");
}

/** Curves with the time-0 point added (nothing has happened at day 0: incidence 0, survival 1). */
export function withOrigin(result) {
  const months = [0, ...result.horizons_months];
  const add = (band, v) => ({
    estimate: [v, ...band.estimate],
    lower: band.lower ? [v, ...band.lower] : null,
    upper: band.upper ? [v, ...band.upper] : null,
  });
  return { months, relapse: add(result.relapse, 0), trm: add(result.trm, 0), efs: add(result.efs, 1), os: add(result.os, 1) };
}

function legend(svg, items, x0, y0) {
  let x = x0;
  for (const [cls, text] of items) {
    svg.append(svgEl("rect", { x, y: y0 - 9, width: 12, height: 12 }, cls));
    const lab = svgEl("text", { x: x + 16, y: y0 + 1 }, "legend");
    lab.textContent = text;
    svg.append(lab);
    // advance by the text's approximate width: CJK characters are about twice as wide as Latin ones
    x += 24 + [...text].reduce((w, ch) => w + (/[\u3000-\u9fff\uff00-\uffef]/.test(ch) ? 12.5 : 7), 0);
  }
}

function whisker(g, xx, y1, y2, cls) {
  g.append(svgEl("line", { x1: xx, x2: xx, y1, y2 }, cls));
  g.append(svgEl("line", { x1: xx - 3, x2: xx + 3, y1, y2: y1 }, cls));
  g.append(svgEl("line", { x1: xx - 3, x2: xx + 3, y1: y2, y2 }, cls));
}

/**
 * Stacked cumulative incidence: relapse from 0, TRM on top of it, the event-free remainder above (relapse + TRM +
 * event-free = 100% at every time). Intervals are thin whiskers at the table's months, drawn beside the boundary
 * they belong to (TRM's shifted by the relapse estimate, where its band sits), so they never cover the estimate line.
 */
export function stackedChart(result, tableMonths, showIntervals, compact = false) {
  const c = withOrigin(result);
  const width = compact ? 420 : 560;
  const height = compact ? 280 : 320;
  const maxMonth = Math.max(...c.months);
  const { box, x, y } = scales(width, height, maxMonth);
  const last = c.months.length - 1;
  const desc = tableMonths
    .map((m) => {
      const i = c.months.indexOf(m);
      return t("chart.stack_desc", { months: m, relapse: pct(c.relapse.estimate[i]), trm: pct(c.trm.estimate[i]), efs: pct(c.efs.estimate[i]) });
    })
    .join(" ");
  const svg = frame(width, height, t("chart.stack_caption"), desc);
  axes(svg, x, y, box, maxMonth);
  const r = c.relapse.estimate;
  const rt = c.months.map((_, i) => r[i] + c.trm.estimate[i]);
  const top = c.months.map((m) => [x(m), y(1)]);
  const relTop = c.months.map((m, i) => [x(m), y(r[i])]);
  const trmTop = c.months.map((m, i) => [x(m), y(rt[i])]);
  const base = c.months.map((m) => [x(m), y(0)]);
  const area = (upper, lower, cls) => svgEl("path", { d: `${pathFrom(upper)} ${pathFrom([...lower].reverse()).replace("M", "L")} Z` }, cls);
  svg.append(area(top, trmTop, "area-efs"), area(trmTop, relTop, "area-trm"), area(relTop, base, "area-relapse"));
  svg.append(svgEl("path", { d: pathFrom(relTop) }, "line-relapse"), svgEl("path", { d: pathFrom(trmTop) }, "line-trm"));
  if (showIntervals) {
    const g = svgEl("g", {}, "intervals");
    for (const m of tableMonths) {
      const i = c.months.indexOf(m);
      if (i < 0) continue;
      if (c.relapse.lower) whisker(g, x(m) - 4, y(c.relapse.lower[i]), y(c.relapse.upper[i]), "whisker-relapse");
      if (c.trm.lower) whisker(g, x(m) + 4, y(r[i] + c.trm.lower[i]), y(r[i] + c.trm.upper[i]), "whisker-trm");
    }
    svg.append(g);
  }
  legend(svg, [["area-relapse", t("chart.relapse")], ["area-trm", t("chart.trm")], ["area-efs", t("chart.event_free")]], box.left, height - 6);
  void last;
  return svg;
}

/** EFS and OS survival curves; the 95% band is a light fill under a solid estimate line drawn on top. */
export function survivalChart(result, tableMonths, showIntervals, compact = false) {
  const c = withOrigin(result);
  const width = compact ? 420 : 560;
  const height = compact ? 280 : 320;
  const maxMonth = Math.max(...c.months);
  const { box, x, y } = scales(width, height, maxMonth);
  const desc = tableMonths
    .map((m) => {
      const i = c.months.indexOf(m);
      return t("chart.surv_desc", { months: m, efs: pct(c.efs.estimate[i]), os: pct(c.os.estimate[i]) });
    })
    .join(" ");
  const svg = frame(width, height, t("chart.surv_caption"), desc);
  axes(svg, x, y, box, maxMonth);
  for (const [key, cls] of [["os", "os"], ["efs", "efs"]]) {
    const band = c[key];
    if (showIntervals && band.lower) {
      const up = c.months.map((m, i) => [x(m), y(band.upper[i])]);
      const lo = c.months.map((m, i) => [x(m), y(band.lower[i])]);
      svg.append(svgEl("path", { d: `${pathFrom(up)} ${pathFrom([...lo].reverse()).replace("M", "L")} Z` }, `band-${cls}`));
    }
  }
  for (const [key, cls] of [["os", "os"], ["efs", "efs"]]) {
    svg.append(svgEl("path", { d: pathFrom(c.months.map((m, i) => [x(m), y(c[key].estimate[i])])) }, `line-${cls}`));
  }
  legend(svg, [["swatch-efs", t("chart.efs")], ["swatch-os", t("chart.os")]], box.left, height - 6);
  return svg;
}

/**
 * Whole-number counts out of 100 for shares that sum to 1, by the largest-remainder method: the counts always add
 * up to exactly 100 and each differs from 100 × share by less than 1.
 */
export function countsOf100(shares) {
  const raw = shares.map((s) => Math.max(0, s) * 100);
  const counts = raw.map(Math.floor);
  let left = 100 - counts.reduce((a, b) => a + b, 0);
  const order = raw.map((v, i) => [v - Math.floor(v), i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0 && k < order.length; k++, left--) counts[order[k][1]] += 1;
  return counts;
}

/** An icon array of 100 children (10 × 10): relapse first, then TRM, then alive without relapse. */
export function iconArray(counts) {
  const [nr, nt, ne] = counts;
  const size = 30;
  const svg = frame(10 * size, 10 * size, t("icons.label", { relapse: nr, trm: nt, efs: ne }), t("icons.label", { relapse: nr, trm: nt, efs: ne }));
  svg.setAttribute("class", "icons");
  const classes = [...Array(nr).fill("icon-relapse"), ...Array(nt).fill("icon-trm"), ...Array(ne).fill("icon-efs")];
  classes.forEach((cls, k) => {
    const cx = (k % 10) * size + size / 2;
    const cy = Math.floor(k / 10) * size;
    const g = svgEl("g", { "data-kind": cls.slice(5) }, cls);
    g.append(svgEl("circle", { cx, cy: cy + 8, r: 5 }));
    g.append(svgEl("path", { d: `M${cx - 8},${cy + 27} Q${cx - 8},${cy + 14} ${cx},${cy + 14} Q${cx + 8},${cy + 14} ${cx + 8},${cy + 27} Z` }));
    svg.append(g);
  });
  return svg;
}

// Plain SVG charts. Each is role="img" with a spoken summary; the numbers are also in a table.

import { count, day, decimal } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") el.textContent = value;
    else if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function shortCount(value) {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${+(value / 1e3).toFixed(0)}k`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value));
}

// A cumulative series over time: times are Date objects, values numbers.
export function lineChart({ label, times, values, tone = "a" }) {
  const width = 320, height = 150;
  const left = 40, right = 12, top = 12, bottom = 28;
  const plotW = width - left - right, plotH = height - top - bottom;
  const t0 = times[0].getTime(), t1 = times[times.length - 1].getTime();
  const span = Math.max(t1 - t0, 1);
  const max = niceMax(Math.max(...values, 0));
  const x = (t) => left + ((t.getTime() - t0) / span) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  const points = times.map((t, i) => `${x(t).toFixed(1)},${y(values[i]).toFixed(1)}`);
  const last = values[values.length - 1];
  const summary = `${label}: ${count(values[0])} on ${day(times[0])}, ${count(last)} on ${day(times[times.length - 1])}.`;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: `chart line tone-${tone}` },
    s("title", { text: summary }),
    s("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: "axis" }),
    s("line", { x1: left, y1: top, x2: left, y2: top + plotH, class: "axis" }),
    s("line", { x1: left, y1: top, x2: left + plotW, y2: top, class: "grid" }),
    s("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end", text: shortCount(max) }),
    s("text", { x: left - 4, y: top + plotH, class: "tick", "text-anchor": "end", text: "0" }),
    s("text", { x: left, y: height - 8, class: "tick", "text-anchor": "start", text: day(times[0]) }),
    s("text", { x: left + plotW, y: height - 8, class: "tick", "text-anchor": "end", text: day(times[times.length - 1]) }),
    s("polygon", { points: `${left},${top + plotH} ${points.join(" ")} ${left + plotW},${top + plotH}`, class: "area" }),
    s("polyline", { points: points.join(" "), class: "stroke" }),
  );
  return svg;
}

// Horizontal bars of mean ± std per model, with each fold's value as a dot.
export function barChart({ label, metric, rows }) {
  const width = 360, rowH = 30, top = 8, bottom = 26, left = 118, right = 58;
  const height = top + bottom + rowH * rows.length;
  const plotW = width - left - right;
  const highest = Math.max(...rows.flatMap((r) => [(r.mean ?? 0) + (r.std ?? 0), ...(r.perFold || []).filter((v) => v !== null)]), 0);
  const max = niceMax(highest);
  const x = (v) => left + (Math.max(v, 0) / max) * plotW;
  const summary = `${label}: ` + rows.map((r) => `${r.name}${r.live ? " (live model's method)" : ""} ${decimal(r.mean)} ± ${decimal(r.std)}`).join("; ") + ".";
  const bars = rows.map((r, i) => {
    const cy = top + i * rowH + rowH / 2;
    const mean = r.mean ?? 0;
    const full = r.live ? `${r.name} (live)` : r.name;
    const name = full.length > 17 ? full.slice(0, 16) + "…" : full;
    return s(
      "g",
      { class: ["bar", r.best ? "best" : "", r.live ? "live" : ""].filter(Boolean).join(" ") },
      s("text", { x: left - 6, y: cy + 4, class: "label", "text-anchor": "end", text: name }),
      s("rect", { x: left, y: cy - 9, width: Math.max(x(mean) - left, 0.5), height: 18, rx: 2 }),
      r.std ? s("line", { x1: x(mean - r.std), x2: x(mean + r.std), y1: cy, y2: cy, class: "whisker" }) : null,
      (r.perFold || []).filter((v) => v !== null).map((v) => s("circle", { cx: x(v), cy, r: 2.5, class: "fold" })),
      s("text", { x: x(mean + (r.std || 0)) + 4, y: cy + 4, class: "value", text: decimal(r.mean, 3) }),
    );
  });
  return s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "chart bars" },
    s("title", { text: summary }),
    s("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }),
    s("text", { x: left, y: height - 8, class: "tick", "text-anchor": "middle", text: "0" }),
    s("text", { x: left + plotW, y: height - 8, class: "tick", "text-anchor": "middle", text: String(+max.toFixed(4)) }),
    s("text", { x: left + plotW / 2, y: height - 8, class: "tick", "text-anchor": "middle", text: metric }),
    bars,
  );
}

// Overview: totals, growth over time, the live model and its evaluation reports.

import { api } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { $, asUtc, count, day, decimal, h, moment, replace, table, tableWrap } from "./dom.js";

// Columns shown by default; "show every metric" adds the rest of the report's metrics.
const MAIN_METRICS = ["recall@20", "ndcg@20", "hitrate@20", "mrr", "auc"];
// Metrics that describe a list rather than its accuracy: never marked best (as in thaw's reports).
const NOT_RANKED = ["coverage@", "cold_exposure@"];

export async function loadOverview() {
  const totals = $("#totals");
  totals.setAttribute("aria-busy", "true");
  const [overview, evaluation] = await Promise.all([
    api("/explore/overview", { params: { points: 48 } }),
    api("/explore/evaluation"),
  ]);
  renderTotals(totals, overview);
  totals.setAttribute("aria-busy", "false");
  renderGrowth($("#growth"), overview.growth);
  renderModel($("#model"), evaluation);
  renderEvaluation($("#evaluation"), evaluation);
}

function renderTotals(el, o) {
  const byType = Object.entries(o.events_by_type).map(([t, n]) => `${count(n)} ${t}`).join(", ");
  const cells = [
    ["Users", count(o.users), null],
    ["Items", count(o.items), `${count(o.live_items)} in the serving index`],
    ["Events", count(o.events), byType || "none yet"],
    ["Serving", o.model_version, o.auth === "keys" ? "API keys required" : "open API (no keys configured)"],
  ];
  replace(
    el,
    cells.map(([name, value, note]) =>
      h("div", { class: "total" }, h("dt", { text: name }), h("dd", {}, h("span", { class: "big", text: value }), note ? h("span", { class: "hint", text: note }) : null)),
    ),
  );
}

function renderGrowth(figure, growth) {
  if (!growth.times.length) {
    replace(figure, h("p", { class: "empty", text: "The store is empty: no users, items or events yet." }));
    return;
  }
  const times = growth.times.map((t) => new Date(asUtc(t)));
  const series = [
    ["Users", growth.users, "a"],
    ["Items", growth.items, "b"],
    ["Events", growth.events, "c"],
  ];
  const rows = times.map((t, i) => [day(t), count(growth.users[i]), count(growth.items[i]), count(growth.events[i])]);
  replace(
    figure,
    h(
      "div",
      { class: "multiples" },
      series.map(([name, values, tone]) => h("div", { class: "multiple" }, h("h3", { text: name }), lineChart({ label: `${name} over time`, times, values, tone }))),
    ),
    h("figcaption", { class: "hint", text: `Cumulative counts at ${times.length} moments from ${day(times[0])} to ${day(times[times.length - 1])}.` }),
    h(
      "details",
      {},
      h("summary", { text: "Show the numbers as a table" }),
      tableWrap("Growth numbers", table(null, ["Date", "Users", "Items", "Events"], rows, { numeric: [1, 2, 3] })),
    ),
  );
}

function renderModel(el, e) {
  const origin = {
    content: "no trained model: content similarity and popularity serve every list",
    checkpoint: "a checkpoint loaded at start (thaw serve --model)",
    retrain: "retrained on this server (POST /admin/train)",
  }[e.origin] || e.origin;
  const metrics = Object.entries(e.live_metrics);
  replace(
    el,
    h(
      "dl",
      { class: "facts" },
      h("dt", { text: "Version" }), h("dd", {}, h("code", { id: "model-version", text: e.model_version })),
      h("dt", { text: "Origin" }), h("dd", { text: origin }),
      e.created_at ? [h("dt", { text: "Live since" }), h("dd", { text: moment(e.created_at) })] : null,
      e.directory ? [h("dt", { text: "Directory" }), h("dd", {}, h("code", { text: e.directory }))] : null,
    ),
    metrics.length
      ? [
          tableWrap("Live model metrics", table("Metrics of the live version", ["Metric", "Value"], metrics.map(([k, v]) => [k, decimal(v)]), { numeric: [1] })),
          h("p", { class: "hint source", text: "Source: the metrics GET /admin/models reports for the live version (validation metrics the checkpoint carries, or the holdout evaluation of a retraining)." }),
        ]
      : h("p", { class: "hint", text: "The live version reports no metrics." }),
  );
}

function renderEvaluation(el, e) {
  el.replaceChildren();
  if (!e.reports.length) {
    el.append(
      h(
        "p",
        { class: "empty" },
        e.directory
          ? "No evaluation reports were found beside the live model. Write one with "
          : "No evaluation reports: the server has no model directory. Serve a trained model and write a report with ",
        h("code", { text: "thaw evaluate --json <model dir>/evaluation/<scenario>.json" }),
        ".",
      ),
    );
  }
  e.reports.forEach((report, n) => el.append(reportSection(report, n, e.directory, e.live_model)));
  e.errors.forEach((err) => el.append(h("p", { class: "error", text: `${err.file} could not be read: ${err.error}` })));
}

function reportSection(report, n, directory, live) {
  const metrics = [...new Set(report.results.flatMap((r) => Object.keys(r.metrics)))];
  const main = MAIN_METRICS.filter((m) => metrics.includes(m));
  const shown = main.length ? main : metrics.slice(0, 5);
  const headingId = `report-${n}`;
  const section = h("section", { class: "report", "aria-labelledby": headingId });
  const chartBox = h("div", { class: "chart-box" });
  const tableBox = h("div");
  const select = h(
    "select",
    { id: `report-${n}-metric` },
    metrics.map((m) => h("option", { value: m, text: m, selected: m === (shown[0] || metrics[0]) })),
  );
  const all = h("input", { type: "checkbox", id: `report-${n}-all` });
  const draw = () => {
    replace(chartBox, barChart({ label: `${report.scenario}, ${select.value}`, metric: select.value, rows: chartRows(report, select.value, live) }));
    replace(tableBox, reportTable(report, all.checked ? metrics : shown, live));
  };
  select.addEventListener("change", draw);
  all.addEventListener("change", draw);
  section.append(
    h("h3", { id: headingId, text: `Scenario ${report.scenario}` }),
    h(
      "p",
      { class: "hint source" },
      `Source: ${report.file} in the live model's directory${directory ? ` (${directory})` : ""}, written by `,
      h("code", { text: "thaw evaluate --json" }),
      `: ${report.folds} fold${report.folds === 1 ? "" : "s"}`,
      report.dataset ? `, dataset ${report.dataset}` : "",
      report.encoder ? `, encoder ${report.encoder}` : "",
      report.primary_ranking ? `, ${report.primary_ranking} ranking` : "",
      ". Mean ± standard deviation over folds; dots are single folds.",
    ),
    liveNote(report, live),
    h("div", { class: "controls" }, h("label", { for: select.id, text: "Chart metric" }), select, h("span", { class: "check" }, all, h("label", { for: all.id, text: "Show every metric in the table" }))),
    chartBox,
    tableBox,
  );
  draw();
  return section;
}

// Which row is the live model's method, and what that row measures.
function liveNote(report, live) {
  if (!live) return h("p", { class: "hint", text: "No trained model is live: these rows are what the report holds, none of them is being served." });
  if (!report.results.some((r) => r.model === live)) {
    return h(
      "p",
      { class: "hint live-note" },
      `This report has no row for the live model's method (${live}); add it with `,
      h("code", { text: `thaw evaluate --models …,${live}` }),
      ".",
    );
  }
  return h(
    "p",
    { class: "hint live-note" },
    "The row marked ",
    h("span", { class: "badge live", text: "live" }),
    ` is ${live}, the method of the live version: each fold trains it afresh on that fold's training data with the report's settings, so it measures the method on this scenario, not the served checkpoint's own numbers (those are under Live model above).`,
  );
}

function chartRows(report, metric, live) {
  const rows = report.results.map((r) => ({
    name: r.model,
    live: r.model === live,
    mean: r.metrics[metric]?.mean ?? null,
    std: r.metrics[metric]?.std ?? null,
    perFold: r.metrics[metric]?.per_fold || [],
  }));
  if (!NOT_RANKED.some((p) => metric.startsWith(p))) {
    const best = Math.max(...rows.map((r) => r.mean ?? -Infinity));
    rows.forEach((r) => (r.best = r.mean === best));
  }
  return rows;
}

function reportTable(report, metrics, live) {
  const best = {};
  for (const m of metrics) {
    if (NOT_RANKED.some((p) => m.startsWith(p))) continue;
    best[m] = Math.max(...report.results.map((r) => r.metrics[m]?.mean ?? -Infinity));
  }
  const rows = report.results.map((r) => [
    r.model === live ? [r.model, " ", h("span", { class: "badge live", text: "live" })] : r.model,
    ...metrics.map((m) => {
      const v = r.metrics[m];
      if (!v || v.mean === null) return "–";
      const text = `${decimal(v.mean)} ± ${decimal(v.std)}`;
      return v.mean === best[m] ? h("strong", { text, title: "best mean" }) : text;
    }),
    r.fit_seconds === null ? "–" : decimal(r.fit_seconds, 1),
  ]);
  const numeric = metrics.map((_, i) => i + 1).concat([metrics.length + 1]);
  return tableWrap(
    `Evaluation table, scenario ${report.scenario}`,
    table(`${report.scenario}: mean ± std over ${report.folds} folds (best mean in bold)`, ["Model", ...metrics, "Fit s"], rows, { numeric }),
  );
}

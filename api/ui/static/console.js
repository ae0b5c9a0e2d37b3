// dspyops console: draws the charts (uPlot, vendored) and follows live tables (EventSource).
// The pages read fully without it: every chart is also a table, every table is HTML.
"use strict";

const COLORS = ["#0a58ca", "#b42318", "#1a7f37", "#8250df"];

function xValue(kind) {
  if (kind === "version") return (u, v) => (v == null ? "" : "v" + v);
  if (kind === "step") return (u, v) => (v == null ? "" : "step " + v);
  return (u, v) => (v == null ? "" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z");
}

function drawChart(figure) {
  const spec = JSON.parse(figure.querySelector("script[type='application/json']").textContent);
  const target = figure.querySelector(".plot");
  const isTime = spec.x_kind === "time";
  const pad = isTime ? 3600 : 1;
  const opts = {
    width: Math.max(target.clientWidth || figure.clientWidth - 20, 280),
    height: 200,
    scales: {
      // One point alone: a margin either side (an hour, or one version or step).
      x: spec.x.length === 1
        ? { time: isTime, auto: false, min: spec.x[0] - pad, max: spec.x[0] + pad }
        : { time: isTime },
    },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    series: [
      { label: spec.x_kind, value: xValue(spec.x_kind) },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: true, size: 6 },
      })),
    ],
    axes: [
      isTime ? {} : { values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : "")) },
      {},
    ],
    hooks: {
      ready: [(u) => { figure.dataset.points = String(u.data[0].length); }],
    },
  };
  const data = [spec.x, ...spec.series.map((s) => s.values)];
  new uPlot(opts, data, target);
}

function followLiveTable(table) {
  const source = new EventSource(table.dataset.live);
  const body = table.tBodies[0];
  source.addEventListener("row", (event) => {
    const { id, html } = JSON.parse(event.data);
    const holder = document.createElement("tbody");
    holder.innerHTML = html.trim();
    const row = holder.firstElementChild;
    row.classList.add("arrived");
    const existing = body.querySelector(`tr[data-row-id="${CSS.escape(id)}"]`);
    if (existing) {
      existing.replaceWith(row);
    } else {
      body.querySelector("tr.empty")?.remove();
      body.prepend(row);
    }
    table.dataset.arrived = String(Number(table.dataset.arrived || 0) + 1);
  });
  // Leaving the page closes the stream at once, not when the server next writes.
  window.addEventListener("pagehide", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("figure[data-chart]").forEach(drawChart);
  document.querySelectorAll("table[data-live]").forEach(followLiveTable);
});

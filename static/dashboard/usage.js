// The Usage page's charts: cost per day by agent, and tokens per day, drawn with uPlot from the
// page's JSON data island (#usage-data, written by the server; never executed). The same figures
// are in the page's tables, so nothing is lost without scripts.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";

const PALETTE = ["#4f46e5", "#0ea5e9", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0d9488", "#dc2626"];
const HEIGHT = 240;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function utcDay(seconds) {
  return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
}

function axes(valueFormat) {
  const stroke = cssVar("--muted", "#626875");
  const grid = { stroke: cssVar("--border", "#e3e5ea"), width: 1 };
  return [
    { stroke, grid, ticks: grid },
    { stroke, grid, ticks: grid, size: 64, values: (u, splits) => splits.map(valueFormat) },
  ];
}

function draw(container, series, data, valueFormat) {
  const options = {
    width: container.clientWidth || 600,
    height: HEIGHT,
    tzDate: utcDay,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: axes(valueFormat),
    series: [{ label: "Day (UTC)", value: "{YYYY}-{MM}-{DD}" }, ...series],
    legend: { live: true },
    cursor: { points: { size: 6 } },
  };
  const chart = new uPlot(options, data, container);
  new ResizeObserver(() => chart.setSize({ width: container.clientWidth, height: HEIGHT })).observe(container);
  return chart;
}

function money(value) {
  if (value == null) return "–";
  return value >= 1 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
}

function count(value) {
  if (value == null) return "–";
  return Intl.NumberFormat(undefined, { notation: value >= 10000 ? "compact" : "standard" }).format(value);
}

function line(label, colour, format, extra = {}) {
  return { label, stroke: colour, width: 2, fill: `${colour}22`, points: { show: true, size: 4 }, value: (u, v) => format(v), ...extra };
}

function start() {
  const island = document.getElementById("usage-data");
  if (!island) return;
  const usage = JSON.parse(island.textContent);

  const costBox = document.getElementById("usage-cost-chart");
  // Lines without fills: several agents' areas on top of each other hide one another.
  const costSeries = usage.agents.map((agent, i) => line(agent.name, PALETTE[i % PALETTE.length], money, { fill: undefined }));
  draw(costBox, costSeries, [usage.days, ...usage.agents.map((agent) => agent.cost)], (v) => money(v));

  const tokenBox = document.getElementById("usage-token-chart");
  const bars = uPlot.paths.bars({ size: [0.7, 40] });
  draw(
    tokenBox,
    [
      line("Input tokens", PALETTE[1], count, { paths: bars, points: { show: false }, fill: `${PALETTE[1]}99` }),
      line("Output tokens", PALETTE[0], count),
    ],
    [usage.days, usage.input_tokens, usage.output_tokens],
    (v) => count(v),
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

// The turn observatory: places the waterfall's bars (offsets and widths come from data-
// attributes: the CSP forbids style="" in the markup) and renders the exchange's Markdown.
import { renderAll } from "./markdown.js";

function placeBars(root = document) {
  for (const bar of root.querySelectorAll(".wf-bar[data-left][data-width]")) {
    const left = Math.min(100, Math.max(0, Number(bar.dataset.left)));
    const width = Math.min(100 - left, Math.max(0.4, Number(bar.dataset.width)));
    bar.style.marginLeft = `${left}%`;
    bar.style.width = `${width}%`;
  }
}

function start() {
  placeBars();
  renderAll();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

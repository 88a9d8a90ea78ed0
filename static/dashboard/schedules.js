// The Schedules page, live: the tenant's /ws stream (the session cookie authenticates a
// same-origin socket) says when a job changed or ran (`job_update`), and the parts of the page
// marked [data-live-url] (the job list, a job's facts and runs) are fetched again with htmx.
// While the socket is down they are polled instead. The job form shows only the fields of the
// chosen schedule and action, and starts a new job in the viewer's own timezone.
import { localizeTimes } from "./app.js";
import { followTenantEvents } from "./live.js";

// A button's request in flight: a refresh now would swap out the form that sent it, and htmx
// would drop its answer (and its toast). The refresh waits for it.
let inflight = 0;
let deferred = false;

function liveParts() {
  return Array.from(document.querySelectorAll("[data-live-url]"));
}

function setStatus(state, text) {
  const badge = document.getElementById("schedules-live");
  if (!badge) return;
  badge.dataset.state = state;
  badge.textContent = text;
}

function refresh() {
  if (!window.htmx) return;
  if (inflight > 0) {
    deferred = true;
    return;
  }
  deferred = false;
  for (const part of liveParts()) {
    window.htmx.ajax("GET", part.dataset.liveUrl, { source: part, target: part, swap: "outerHTML" });
  }
}

/** Show the fields of the chosen schedule type and action ([data-when="schedule:cron"]...). */
function applySwitches(form) {
  for (const select of form.querySelectorAll("[data-switch]")) {
    const name = select.dataset.switch;
    for (const part of form.querySelectorAll(`[data-when^="${name}:"]`)) {
      part.classList.toggle("hidden", part.dataset.when !== `${name}:${select.value}`);
    }
  }
}

function wireForm(form) {
  const zone = form.querySelector("[data-default-browser='1']");
  if (zone && !zone.value) {
    zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    zone.dispatchEvent(new Event("change", { bubbles: true })); // the preview reads it again
  }
  applySwitches(form);
  form.addEventListener("change", (event) => {
    if (event.target.matches("[data-switch]")) applySwitches(form);
  });
}

function start() {
  for (const form of document.querySelectorAll("[data-schedule-form]")) wireForm(form);
  // Parts are swapped whole (outerHTML): the frame localizes the old element, so do the new one.
  document.body.addEventListener("htmx:afterSettle", () => {
    liveParts().forEach((part) => localizeTimes(part));
    const preview = document.getElementById("schedule-preview");
    if (preview) localizeTimes(preview);
  });
  if (!liveParts().length) return;
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.tagName !== "FORM") return;
    inflight += 1;
    // A refresh already on its way would swap the form out too: drop it, refresh after.
    deferred = true;
    liveParts().forEach((part) => window.htmx.trigger(part, "htmx:abort"));
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.tagName !== "FORM") return;
    inflight = Math.max(0, inflight - 1);
    if (inflight === 0 && deferred) refresh();
  });
  followTenantEvents({ types: ["job_update"], refresh, onStatus: setStatus });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

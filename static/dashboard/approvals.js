// The approvals inbox, live: the tenant's /ws stream (the session cookie authenticates a
// same-origin socket) says when an approval is requested or resolved, and the list partial is
// fetched again with htmx. While the socket is down the list is polled instead.
import { localizeTimes } from "./app.js";
import { followTenantEvents } from "./live.js";

let deferred = false;

function listElement() {
  return document.getElementById("approval-list");
}

function setStatus(state, text) {
  const badge = document.getElementById("approvals-live");
  if (!badge) return;
  badge.dataset.state = state;
  badge.textContent = text;
}

/** Someone is typing a reason: swapping the list now would throw it away. */
function busy() {
  const active = document.activeElement;
  return Boolean(active && active.closest && active.closest("#approval-list .decide-form") && active.value);
}

function refresh() {
  const list = listElement();
  if (!list || !window.htmx) return;
  if (busy()) {
    deferred = true;
    return;
  }
  deferred = false;
  window.htmx.ajax("GET", list.dataset.listUrl, { target: "#approval-list", swap: "outerHTML" });
}

function start() {
  if (!listElement()) return;
  // The list is swapped whole (outerHTML): the frame localizes the old element, so do the new one.
  document.body.addEventListener("htmx:afterSettle", () => {
    const list = listElement();
    if (list) localizeTimes(list);
  });
  document.addEventListener("focusout", () => {
    if (deferred) setTimeout(() => !busy() && refresh(), 0);
  });
  followTenantEvents({ types: ["approval_request", "approval_resolved"], refresh, onStatus: setStatus });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

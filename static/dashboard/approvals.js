// The approvals inbox, live: the tenant's /ws stream (the session cookie authenticates a
// same-origin socket) says when an approval is requested or resolved, and the list partial is
// fetched again with htmx. While the socket is down the list is polled instead.
import { localizeTimes } from "./app.js";

const LIVE_TYPES = new Set(["approval_request", "approval_resolved"]);
const POLL_MS = 5000;

let socket = null;
let retryMs = 1000;
let pollTimer = null;
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

function startPolling() {
  if (!pollTimer) pollTimer = setInterval(refresh, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.addEventListener("message", (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (data.type === "connected") {
      retryMs = 1000;
      stopPolling();
      setStatus("live", "Live");
      refresh(); // anything that happened while we were away
    } else if (Number.isInteger(data.id) && LIVE_TYPES.has(data.type)) {
      refresh();
    }
  });
  socket.addEventListener("close", (event) => {
    // 4401: not allowed to follow the stream (signed out, removed): polling still shows the list.
    setStatus("polling", "Updating every few seconds");
    startPolling();
    if (event.code !== 4401 && event.code !== 4403) {
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    }
  });
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
  if ("WebSocket" in window) connect();
  else startPolling();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

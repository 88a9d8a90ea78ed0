// The live conversation: posts through the REST API (session cookie + CSRF), follows the
// session's events on /ws and draws them. The page is server-rendered up to an event id
// (data-last-event-id); the socket resumes after it, so a reload or a dropped connection
// mid-answer replays from the log without gaps, and the event ids seen are kept so nothing is
// drawn twice. A finished turn is redrawn from the server (the same template as the page).
import { apiFetch, localizeTimes, toast } from "./app.js";
import { renderAll, renderMarkdown } from "./markdown.js";

const chat = document.getElementById("chat");
const log = document.getElementById("chat-log");
const sessionId = chat.dataset.sessionId;
const canApprove = chat.dataset.canApprove === "1";
let lastId = Number(chat.dataset.lastEventId) || 0;
const seen = new Set();
const streams = new Map(); // turn id -> {steps: Map(step -> text), step, drawn, raf}
const waiting = new Map(); // turn id -> events that arrived before its block was on the page
const fetching = new Set();
const sources = new WeakMap(); // a user message's element -> its text (for edit and resend)
let posting = 0; // posts in flight whose turn id is not known yet

const $ = (root, selector) => root.querySelector(selector);
const clone = (id) => document.getElementById(id).content.firstElementChild.cloneNode(true);
const turnEl = (id) => $(log, `.turn[data-turn-id="${CSS.escape(id)}"]`);
const label = (status) => (status || "").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

function hydrate(root) {
  for (const body of root.querySelectorAll(".msg.user .msg-body:not([data-rendered])")) {
    sources.set(body.closest(".msg"), body.textContent);
  }
  renderAll(root);
  localizeTimes(root);
}

function keepBottom(change) {
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  change();
  if (stick) log.scrollTop = log.scrollHeight;
}

function setStatus(el, status) {
  el.dataset.status = status;
  const badge = $(el, ".turn-status");
  if (badge) {
    badge.className = `badge ${status} turn-status`;
    badge.textContent = label(status);
  }
}

function updateStop() {
  const stop = document.getElementById("composer-stop");
  if (stop) stop.hidden = !$(log, '.turn[data-final="0"]');
}

// --- events -----------------------------------------------------------------------------------

function onEvent(event) {
  if (seen.has(event.id)) return;
  seen.add(event.id);
  if (event.id > lastId) lastId = event.id;
  if (event.session_id !== sessionId || !event.turn_id) return;
  const el = turnEl(event.turn_id);
  if (el) {
    if (el.dataset.final !== "1") keepBottom(() => apply(el, event));
    return;
  }
  // A turn this page has not drawn: ours (the POST has not answered yet) or another tab's.
  if (!waiting.has(event.turn_id)) waiting.set(event.turn_id, []);
  waiting.get(event.turn_id).push(event);
  if (!posting) fetchTurn(event.turn_id);
}

function stream(id) {
  if (!streams.has(id)) streams.set(id, { steps: new Map(), step: 0, drawn: false, raf: 0 });
  return streams.get(id);
}

function apply(el, { type, data }) {
  const s = stream(el.dataset.turnId);
  switch (type) {
    case "turn_queued":
      setStatus(el, "queued");
      break;
    case "turn_started":
      setStatus(el, "running");
      if (data.takeover) {
        s.steps.delete(s.step); // another worker streams the current step again
        draw(el, s);
      }
      break;
    case "chat_token": {
      const step = data.step ?? 0;
      s.step = Math.max(s.step, step);
      s.steps.set(step, (s.steps.get(step) || "") + data.delta);
      draw(el, s);
      break;
    }
    case "tool_call":
      tool(el, data);
      break;
    case "tool_result":
      tool(el, data, true);
      break;
    case "approval_request":
      approvalCard(el, data);
      setStatus(el, "waiting_approval");
      break;
    case "approval_resolved":
      approvalResolved(el, data);
      break;
    case "chat_complete":
      finish(el, "completed", data.text);
      break;
    case "turn_failed":
      finish(el, "failed");
      break;
    case "turn_cancelled":
      finish(el, "cancelled", data.partial_text);
      break;
  }
}

const textOf = (s) => [...s.steps.keys()].sort((a, b) => a - b).map((k) => s.steps.get(k)).join("");

function draw(el, s) {
  if (s.raf) return;
  const paint = () => {
    s.raf = 0;
    const text = textOf(s);
    renderMarkdown($(el, ".answer"), text, { highlight: false });
    if (!s.drawn && text) {
      s.drawn = true;
      performance.mark("first-token-drawn");
    }
  };
  // The first token is drawn at once (the POST-to-first-token benchmark); later ones per frame.
  if (s.drawn) s.raf = requestAnimationFrame(paint);
  else paint();
}

function finish(el, status, text) {
  el.dataset.final = "1";
  setStatus(el, status);
  const s = streams.get(el.dataset.turnId);
  if (s?.raf) cancelAnimationFrame(s.raf);
  if (text !== undefined) renderMarkdown($(el, ".answer"), text || "", { highlight: false });
  streams.delete(el.dataset.turnId);
  updateStop();
  fetchTurn(el.dataset.turnId); // redrawn by the server: tool calls, grade, retry, inspect
}

function tool(el, data, done = false) {
  let box = $(el, `.tool-call[data-tool-call-id="${CSS.escape(data.tool_call_id)}"]`);
  if (!box) {
    box = clone("tpl-tool-call");
    box.dataset.toolCallId = data.tool_call_id;
    $(box, ".tool-name").textContent = data.name;
    $(box, ".tool-args").textContent = JSON.stringify(data.arguments ?? {}, null, 2);
    $(el, ".turn-steps").append(box);
  }
  if (done) {
    toolStatus(box, data.status || (data.ok ? "completed" : "failed"));
    $(box, ".tool-time").textContent = data.duration_ms != null ? `${data.duration_ms} ms` : "";
    $(box, ".tool-result").textContent = data.output ?? "";
    $(box, ".tool-result-wrap").hidden = false;
  }
  return box;
}

function toolStatus(box, status) {
  const badge = $(box, ".tool-status");
  badge.className = `badge ${status} tool-status`;
  badge.textContent = label(status);
}

function approvalCard(el, data) {
  if ($(el, `.approval-card[data-approval-id="${CSS.escape(data.approval_id)}"]`)) return;
  const box = tool(el, { ...data, arguments: data.arguments });
  toolStatus(box, "waiting_approval");
  const card = clone("tpl-approval");
  card.dataset.approvalId = data.approval_id;
  $(card, ".approval-tool").textContent = data.name;
  $(card, ".approval-args").textContent = JSON.stringify(data.arguments ?? {}, null, 2);
  $(card, ".approval-reason").textContent = data.policy_reason || "";
  $(card, canApprove ? ".approval-form" : ".approval-wait").hidden = false;
  box.after(card);
}

function approvalResolved(el, data) {
  const card = $(el, `.approval-card[data-approval-id="${CSS.escape(data.approval_id)}"]`);
  if (!card) return;
  const badge = $(card, ".approval-status");
  badge.className = `badge ${data.status} approval-status`;
  badge.textContent = label(data.status);
  $(card, ".approval-form").hidden = true;
  $(card, ".approval-wait").hidden = true;
  const who = data.decided_by ? ` by ${data.decided_by}` : "";
  $(card, ".approval-reason").textContent =
    `${label(data.status)}${who}${data.decision_reason ? `: ${data.decision_reason}` : "."}`;
}

/** Draw (or redraw) a turn from the server's template, then apply what arrived meanwhile. */
async function fetchTurn(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    const response = await fetch(`/chat/${sessionId}/turns/${id}/`, { credentials: "same-origin" });
    if (!response.ok) return;
    const box = document.createElement("div");
    box.innerHTML = await response.text(); // our own template, escaped server-side
    const turn = $(box, ".turn");
    const message = $(box, ".msg");
    keepBottom(() => {
      const existing = turnEl(id);
      if (existing) existing.replaceWith(turn);
      else place(turn, message);
      hydrate(turn);
      if (message?.isConnected) hydrate(message);
    });
    const buffered = waiting.get(id) || [];
    waiting.delete(id);
    if (turn.dataset.final !== "1") for (const event of buffered) apply(turn, event);
    updateStop();
  } catch (error) {
    toast(`Could not load the turn: ${error.message}`, "error");
  } finally {
    fetching.delete(id);
  }
}

function place(turn, message) {
  document.getElementById("chat-empty")?.remove();
  const inputId = turn.dataset.inputMessageId;
  const group = log.querySelectorAll(
    `.msg[data-message-id="${CSS.escape(inputId)}"], .turn[data-input-message-id="${CSS.escape(inputId)}"]`,
  );
  if (group.length) group[group.length - 1].after(turn);
  else log.append(...(message ? [message, turn] : [turn]));
}

function bind(turn, id) {
  turn.dataset.turnId = id;
  const buffered = waiting.get(id) || [];
  waiting.delete(id);
  for (const event of buffered) if (turn.dataset.final !== "1") apply(turn, event);
  updateStop();
}

function postDone() {
  posting -= 1;
  if (!posting) for (const id of waiting.keys()) fetchTurn(id);
}

// --- the socket -----------------------------------------------------------------------------

let retryMs = 500;

function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = url.protocol.replace("http", "ws");
  url.searchParams.set("session_id", sessionId);
  url.searchParams.set("last_event_id", String(lastId));
  const socket = new WebSocket(url);
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (Number.isInteger(data.id)) onEvent(data);
    else if (data.type === "overflow" && Number.isInteger(data.resume_from)) lastId = data.resume_from;
    else if (data.type === "connected") {
      retryMs = 500;
      chat.dataset.socket = "live";
    }
  });
  socket.addEventListener("close", (event) => {
    chat.dataset.socket = "closed";
    if ([4400, 4401, 4403].includes(event.code)) {
      toast("Live updates stopped: reload the page (you may have been signed out).", "error", 15000);
      return;
    }
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  });
}

// --- the composer ---------------------------------------------------------------------------

const composer = document.getElementById("composer");
const files = []; // {ref, mime_type, filename, chip} or {pending: true}

function userMessage(text, attached) {
  const el = clone("tpl-user-message");
  renderMarkdown($(el, ".msg-body"), text);
  sources.set(el, text);
  if (attached.length) {
    const box = $(el, ".msg-files");
    box.hidden = false;
    for (const file of attached) {
      const url = `/api/sessions/${sessionId}/attachments/${encodeURIComponent(file.ref)}`;
      let item;
      if (file.mime_type.startsWith("image/")) {
        item = document.createElement("img");
        Object.assign(item, { className: "thumb", src: url, alt: file.filename });
      } else {
        item = document.createElement("a");
        Object.assign(item, { className: "file-chip", href: url, textContent: file.filename });
      }
      box.append(item);
    }
  }
  return el;
}

async function send(textarea) {
  const text = textarea.value.trim();
  if (files.some((f) => f.pending)) return toast("Wait for the upload to finish.");
  const attached = files.splice(0);
  if (!text && !attached.length) return;
  const parts = text ? [{ type: "text", text }] : [];
  for (const f of attached) parts.push({ type: f.mime_type.startsWith("image/") ? "image" : "file", ref: f.ref });
  attached.forEach((f) => f.chip.remove());
  document.getElementById("composer-files").hidden = true;
  const message = userMessage(text, attached);
  const turn = clone("tpl-turn");
  document.getElementById("chat-empty")?.remove();
  log.append(message, turn);
  log.scrollTop = log.scrollHeight;
  textarea.value = "";
  posting += 1;
  try {
    performance.mark("message-posted");
    const accepted = await apiFetch(`/api/sessions/${sessionId}/messages`, { method: "POST", json: { parts } });
    message.dataset.messageId = accepted.message_id;
    if (accepted.turn_id) bind(turn, accepted.turn_id);
    else turn.remove();
    if (chat.dataset.untitled === "1" && text) {
      chat.dataset.untitled = "0";
      apiFetch(`/api/sessions/${sessionId}`, { method: "PATCH", json: { title: text.slice(0, 80) } }).catch(() => {});
    }
  } catch (error) {
    message.remove();
    turn.remove();
    textarea.value = text;
    toast(error.message, "error");
  } finally {
    postDone();
  }
}

async function upload(file) {
  const box = document.getElementById("composer-files");
  const chip = clone("tpl-file-chip");
  $(chip, ".file-name").textContent = `${file.name} …`;
  box.append(chip);
  box.hidden = false;
  const entry = { pending: true, chip, filename: file.name };
  files.push(entry);
  const body = new FormData();
  body.append("file", file);
  try {
    const stored = await apiFetch(`/api/sessions/${sessionId}/attachments`, { method: "POST", body });
    Object.assign(entry, stored, { pending: false, filename: stored.filename || file.name });
    $(chip, ".file-name").textContent = entry.filename;
    chip.dataset.ref = stored.ref;
  } catch (error) {
    files.splice(files.indexOf(entry), 1);
    chip.remove();
    box.hidden = !files.length;
    toast(`${file.name}: ${error.message}`, "error");
  }
}

if (composer) {
  const textarea = document.getElementById("composer-text");
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(textarea);
    }
  });
  textarea.addEventListener("input", () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 240)}px`;
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(textarea);
  });
  const picker = document.getElementById("composer-attach");
  picker.addEventListener("change", () => {
    for (const file of picker.files) upload(file);
    picker.value = "";
  });
  document.getElementById("composer-files").addEventListener("click", (event) => {
    const chip = event.target.closest(".remove-file")?.closest(".file-chip");
    if (!chip) return;
    const index = files.findIndex((f) => f.chip === chip);
    if (index >= 0) files.splice(index, 1);
    chip.remove();
    document.getElementById("composer-files").hidden = !files.length;
  });
  document.getElementById("composer-stop").addEventListener("click", () =>
    apiFetch(`/api/sessions/${sessionId}/cancel`, { method: "POST" }).catch((e) => toast(e.message, "error")),
  );
}

// --- actions on past messages and answers ---------------------------------------------------

async function retry(turn) {
  const fresh = clone("tpl-turn");
  turn.after(fresh);
  posting += 1;
  try {
    const started = await apiFetch(`/api/sessions/${sessionId}/turns/${turn.dataset.turnId}/retry`, {
      method: "POST",
    });
    fresh.dataset.inputMessageId = turn.dataset.inputMessageId;
    bind(fresh, started.id);
  } catch (error) {
    fresh.remove();
    toast(error.message, "error");
  } finally {
    postDone();
  }
}

function editMessage(message) {
  if (!message.dataset.messageId || $(message, ".edit-form")) return;
  const body = $(message, ".msg-body");
  const form = document.createElement("form");
  form.className = "edit-form";
  const area = document.createElement("textarea");
  area.value = sources.get(message) || body.textContent;
  area.setAttribute("aria-label", "Edited message");
  const resend = document.createElement("button");
  resend.className = "button primary small";
  resend.type = "submit";
  resend.textContent = "Send as a new branch";
  const cancel = document.createElement("button");
  cancel.className = "button small";
  cancel.type = "button";
  cancel.textContent = "Cancel";
  const row = document.createElement("div");
  row.className = "button-row";
  row.append(resend, cancel);
  form.append(area, row);
  body.hidden = true;
  body.after(form);
  area.focus();
  cancel.addEventListener("click", () => {
    form.remove();
    body.hidden = false;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (!text) return;
    resend.disabled = true;
    try {
      const fork = await apiFetch(`/api/sessions/${sessionId}/fork`, {
        method: "POST",
        json: { before_message_id: message.dataset.messageId },
      });
      const kept = JSON.parse(message.dataset.attachments || "[]").filter((p) => p.ref);
      const parts = [{ type: "text", text }, ...kept.map((p) => ({ type: p.type, ref: p.ref }))];
      await apiFetch(`/api/sessions/${fork.id}/messages`, { method: "POST", json: { parts } });
      location.assign(`/chat/${fork.id}/`);
    } catch (error) {
      resend.disabled = false;
      toast(error.message, "error");
    }
  });
}

async function decide(card, decision, reason) {
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  try {
    await apiFetch(`/api/approvals/${card.dataset.approvalId}/${decision}`, { method: "POST", json: { reason } });
  } catch (error) {
    for (const button of card.querySelectorAll("button")) button.disabled = false;
    toast(error.message, "error");
  }
}

async function grade(form) {
  const chosen = $(form, "input[name=grade]:checked");
  if (!chosen) return toast("Pick a grade from 1 to 5.", "error");
  try {
    await apiFetch(`/api/turns/${form.dataset.turnId}/feedback`, {
      method: "POST",
      json: { grade: Number(chosen.value), comment: form.elements.comment.value },
    });
    toast("Thanks: your grade is saved.");
  } catch (error) {
    toast(error.message, "error");
  }
}

log.addEventListener("click", (event) => {
  const retryButton = event.target.closest(".retry");
  if (retryButton) retry(retryButton.closest(".turn"));
  const edit = event.target.closest(".edit-message");
  if (edit) editMessage(edit.closest(".msg"));
});

log.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.classList.contains("approval-form")) {
    event.preventDefault();
    decide(form.closest(".approval-card"), event.submitter?.value || "approve", form.elements.reason.value);
  } else if (form.classList.contains("feedback")) {
    event.preventDefault();
    grade(form);
  }
});

hydrate(log);
updateStop();
log.scrollTop = log.scrollHeight;
connect();

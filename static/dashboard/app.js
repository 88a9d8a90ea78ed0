// The dashboard's shared behaviour: the frame (sidebar, tenant switcher), toasts, copy buttons,
// local times, and JSON API calls with the session's CSRF token. Pages import what they need:
//   import { apiFetch, toast } from "/static/dashboard/app.js";
// No inline scripts anywhere: the Content-Security-Policy is 'self'.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const holder = document.querySelector("[hx-headers]");
  try {
    return holder ? JSON.parse(holder.getAttribute("hx-headers"))["X-CSRFToken"] : "";
  } catch {
    return "";
  }
}

export function toast(message, kind = "info", ms = 5000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

/** The API's error body ({"error", "message", "fields"}) as one sentence. */
export function errorText(body, fallback = "Something went wrong") {
  if (!body || typeof body !== "object") return fallback;
  const parts = [body.message || body.error || fallback];
  if (body.fields && typeof body.fields === "object") {
    for (const [field, problems] of Object.entries(body.fields)) {
      parts.push(`${field}: ${[].concat(problems).join(" ")}`);
    }
  }
  return parts.join(" · ");
}

export class ApiError extends Error {
  constructor(status, body) {
    super(errorText(body, `HTTP ${status}`));
    this.status = status;
    this.body = body;
  }
}

/** fetch() against our own API with the session cookie; JSON in and out; throws ApiError. */
export async function apiFetch(url, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers }, signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API needs a secure context; fall back to a hidden textarea.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied");
}

const timeFormats = {
  datetime: { dateStyle: "medium", timeStyle: "short" },
  date: { dateStyle: "medium" },
  time: { timeStyle: "short" },
};

export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[datetime][data-format]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    const kind = el.dataset.format;
    if (kind === "relative") {
      el.textContent = relativeTime(when);
    } else {
      el.textContent = when.toLocaleString(undefined, timeFormats[kind] || timeFormats.datetime);
    }
    el.title = when.toLocaleString();
  }
}

export function relativeTime(when) {
  const seconds = Math.round((when.getTime() - Date.now()) / 1000);
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit);
  }
  return rtf.format(seconds, "second");
}

function wireFrame() {
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-toggle-sidebar]");
    if (toggle) document.body.classList.toggle("sidebar-open");
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = copy.dataset.copyTarget ? document.querySelector(copy.dataset.copyTarget) : null;
      copyText(source ? source.textContent : copy.dataset.copy);
    }
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
  });
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") document.body.classList.remove("sidebar-open");
  });
  // htmx: errors say what went wrong, in a toast; server-sent toasts (HX-Trigger: {"toast": ...}).
  document.body.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      body = null;
    }
    toast(errorText(body, `The server answered ${xhr.status}`), "error");
  });
  document.body.addEventListener("htmx:sendError", () => toast("Could not reach the server. Check your connection.", "error"));
  document.body.addEventListener("toast", (event) => toast(event.detail.value || event.detail.message || "Done"));
  document.body.addEventListener("htmx:afterSwap", (event) => localizeTimes(event.detail.target));
  localizeTimes();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireFrame);
else wireFrame();

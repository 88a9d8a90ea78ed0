// Follow the tenant's events on a page: the tenant's /ws stream (the session cookie
// authenticates a same-origin socket) calls `refresh` whenever an event of `types` arrives,
// and once on (re)connecting for what happened meanwhile. While the socket is down, `refresh`
// runs every `pollMs` instead; `onStatus("live" | "polling", text)` says which.
export function followTenantEvents({ types, refresh, onStatus = () => {}, pollMs = 5000 }) {
  const wanted = new Set(types);
  let retryMs = 1000;
  let pollTimer = null;

  const startPolling = () => {
    if (!pollTimer) pollTimer = setInterval(refresh, pollMs);
  };
  const stopPolling = () => {
    clearInterval(pollTimer);
    pollTimer = null;
  };

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
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
        onStatus("live", "Live");
        refresh(); // anything that happened while we were away
      } else if (Number.isInteger(data.id) && wanted.has(data.type)) {
        refresh();
      }
    });
    socket.addEventListener("close", (event) => {
      onStatus("polling", "Updating every few seconds");
      startPolling();
      // 4401/4403: not allowed to follow the stream (signed out, removed): polling still works.
      if (event.code !== 4401 && event.code !== 4403) {
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      }
    });
  }

  if ("WebSocket" in window) connect();
  else startPolling();
}

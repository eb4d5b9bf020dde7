// Live updates for agents: a pushed event is a hint to reload, never the data itself.
(function () {
  "use strict";
  const notice = document.getElementById("live-notice");
  const status = document.getElementById("live-status");
  let retry = 1000;

  function showStatus(state) {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = state === "connected" ? status.dataset.labelOn : status.dataset.labelOff;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/agent/`);
    socket.onopen = () => { retry = 1000; showStatus("connected"); };
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (!notice) return;
      const ticket = data.payload && data.payload.ticket;
      const subject = (data.payload && data.payload.subject) || "";
      notice.textContent = ticket ? `#${ticket} ${subject} · ${notice.dataset.label}` : data.event;
      notice.hidden = false;
    };
    socket.onclose = (event) => {
      showStatus("offline");
      if (event.code === 4403) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  if (notice) notice.addEventListener("click", () => window.location.reload());
  connect();
})();

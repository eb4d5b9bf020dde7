// Live updates for agents: a pushed event is a hint to reload, never the data itself.
(function () {
  "use strict";
  const notice = document.getElementById("live-notice");
  let retry = 1000;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/agent/`);
    socket.onopen = () => { retry = 1000; };
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (!notice) return;
      const ticket = data.payload && data.payload.ticket;
      notice.textContent = ticket ? `Ticket #${ticket} changed (${data.event}). Reload to see it.` : data.event;
      notice.hidden = false;
      notice.onclick = () => window.location.reload();
    };
    socket.onclose = (event) => {
      if (event.code === 4403) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();

// Live updates for agents: a pushed event is a hint to reload, never the data itself. Each one is
// also dispatched on the document as a "helpdesk:event" (detail: {event, payload}).
// The open socket also carries the agent's heartbeat, which keeps their presence (online, away,
// offline) live; the header's presence switch shows what the server last said.
(function () {
  "use strict";
  const HEARTBEAT_MS = 20000;
  const PRESENCE_EVENT = "agent.presence";
  const notice = document.getElementById("live-notice");
  const status = document.getElementById("live-status");
  const presenceSwitch = document.querySelector("select[data-presence-user]");
  let retry = 1000;
  // Other modules speak over this socket (ticket-presence.js): they dispatch "helpdesk:send"
  // with the message as its detail, and hear "helpdesk:connected" each time it (re)opens.
  let openSocket = null;
  document.addEventListener("helpdesk:send", (event) => {
    if (openSocket && openSocket.readyState === WebSocket.OPEN) openSocket.send(JSON.stringify(event.detail));
  });

  function showStatus(state) {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = state === "connected" ? status.dataset.labelOn : status.dataset.labelOff;
  }

  function showPresence(payload) {
    // Presence of others is for pages that list agents (they listen for this DOM event).
    document.dispatchEvent(new CustomEvent("helpdesk:presence", { detail: payload }));
    if (!presenceSwitch || String(payload.user) !== presenceSwitch.dataset.presenceUser) return;
    presenceSwitch.value = payload.status;
    presenceSwitch.dataset.state = payload.status;
  }

  // The notice says what changed in words, in the page's language (base.html's data-said-*).
  function whatChanged(event, payload) {
    const said = notice.dataset;
    const ticket = payload.ticket;
    let words = said.saidOther;
    if (ticket) {
      if (event === "ticket.message") {
        words = payload.direction === "note" ? said.saidNote : said.saidMessage;
      } else if (event === "ticket.created") {
        words = said.saidCreated;
      } else if (event === "ticket.updated" && "assignee" in payload) {
        words = payload.assignee === null ? said.saidUnassigned : said.saidAssigned;
      } else if (event === "ticket.updated" && "status" in payload) {
        words = said.saidStatus;
      } else if (event === "ticket.updated" && "priority" in payload) {
        words = said.saidPriority;
      } else if (event === "message.sent") {
        words = said.saidSent;
      } else if (event === "message.failed") {
        words = said.saidFailed;
      } else if (event === "message.retrying") {
        words = said.saidRetrying;
      } else {
        words = said.saidUpdated;
      }
    }
    return (words || event).replace("{ticket}", ticket);
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/agent/`);
    let heartbeat = null;
    const beat = () => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "heartbeat" }));
    };
    socket.onopen = () => {
      retry = 1000;
      openSocket = socket;
      showStatus("connected");
      document.dispatchEvent(new CustomEvent("helpdesk:connected"));
      beat();
      heartbeat = setInterval(beat, HEARTBEAT_MS);
    };
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      // Every event goes to the page's own listeners (live-sections.js, dashboard.js); one that
      // refreshes the part of the page it is about cancels it, and no reload is suggested.
      const heard = new CustomEvent("helpdesk:event", {
        detail: { event: data.event, payload: data.payload || {} },
        cancelable: true,
      });
      const unhandled = document.dispatchEvent(heard);
      if (data.event === PRESENCE_EVENT) {
        showPresence(data.payload || {});
        return;
      }
      if (!notice || !unhandled) return;
      const payload = data.payload || {};
      const what = [whatChanged(data.event, payload), payload.subject].filter(Boolean).join(" ");
      notice.textContent = `${what} · ${notice.dataset.label}`;
      notice.hidden = false;
    };
    socket.onclose = (event) => {
      if (openSocket === socket) openSocket = null;
      if (heartbeat !== null) clearInterval(heartbeat);
      heartbeat = null;
      showStatus("offline");
      if (event.code === 4403) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  if (notice) notice.addEventListener("click", () => window.location.reload());
  connect();
})();

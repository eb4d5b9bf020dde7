// Colleagues on this ticket. The page tells the agents' socket (agent-events.js) that it shows
// the ticket, when the agent types in its reply or note box (at most once per 3 s) and when it
// goes away; it shows which colleagues have the ticket open and who is typing, in the page's
// language (templates/tickets/ticket/presence.html; the server relays only to colleagues who
// may work the ticket: tickets/ticket_presence.py). "Typing" fades a few seconds after the
// last keystroke; a colleague whose page stops refreshing its "viewing" fades too.
(function () {
  "use strict";
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 6000;
  const VIEWING_EVERY_MS = 30000;
  const VIEWING_SHOWN_MS = 75000;
  const EVENT = "ticket.presence";
  const root = document.querySelector("[data-ticket-presence]");
  if (!root) return;
  const ticket = Number(root.dataset.ticketPresence);
  const list = root.querySelector("ul");
  const said = root.dataset;
  // Colleagues' pages by their id: {user, name, typing: "reply" | "note" | null, typedAt, seenAt}.
  const pages = new Map();
  let shown = "";
  let typedAt = 0;
  let away = false;

  function send(type, extra) {
    const detail = Object.assign({ type, ticket }, extra || {});
    document.dispatchEvent(new CustomEvent("helpdesk:send", { detail }));
  }

  function wordsFor(person) {
    if (person.typing === "note") return said.saidTypingNote;
    return person.typing ? said.saidTyping : said.saidViewing;
  }

  function render() {
    const now = Date.now();
    const people = new Map(); // a person with two pages open shows once; typing wins
    pages.forEach((page, key) => {
      if (now - page.seenAt > VIEWING_SHOWN_MS) {
        pages.delete(key);
        return;
      }
      const typing = page.typing && now - page.typedAt < TYPING_SHOWN_MS ? page.typing : null;
      const known = people.get(page.user);
      if (!known || (typing && !known.typing)) people.set(page.user, { name: page.name, typing });
    });
    const lines = Array.from(people, ([user, person]) => ({
      user,
      state: person.typing ? "typing" : "viewing",
      text: wordsFor(person).replace("{name}", person.name),
    }));
    const lines_shown = JSON.stringify(lines);
    if (lines_shown === shown) return; // unchanged: screen readers are not told again
    shown = lines_shown;
    list.replaceChildren(
      ...lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line.text;
        item.dataset.state = line.state;
        item.dataset.user = line.user;
        return item;
      })
    );
    root.hidden = lines.length === 0;
  }

  document.addEventListener("helpdesk:event", (event) => {
    if (event.detail.event !== EVENT) return;
    event.preventDefault(); // presence is shown here, never as a "something changed" notice
    const heard = event.detail.payload;
    if (heard.ticket !== ticket) return;
    const key = heard.page || String(heard.user);
    if (heard.state === "left") {
      pages.delete(key);
    } else {
      const page = pages.get(key) || { user: heard.user, typing: null, typedAt: 0 };
      page.name = heard.name;
      page.seenAt = Date.now();
      if (heard.state === "typing") {
        page.typing = heard.box === "note" ? "note" : "reply";
        page.typedAt = page.seenAt;
      }
      pages.set(key, page);
    }
    render();
  });

  function announce() {
    if (!away) send("viewing");
  }

  // Each (re)opened socket says so again, and hears afresh who is there.
  document.addEventListener("helpdesk:connected", () => {
    pages.clear();
    render();
    announce();
  });
  const status = document.getElementById("live-status");
  if (status && status.dataset.state === "connected") announce();
  setInterval(announce, VIEWING_EVERY_MS);
  setInterval(render, 1000);

  document.querySelectorAll("textarea[data-draft]").forEach((box) => {
    box.addEventListener("input", () => {
      const now = Date.now();
      if (now - typedAt < TYPING_EVERY_MS) return;
      typedAt = now;
      send("typing", { box: box.dataset.draft === "note" ? "note" : "reply" });
    });
  });

  window.addEventListener("pagehide", () => {
    away = true;
    send("left");
  });
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return; // back from the browser's page cache
    away = false;
    pages.clear();
    render();
    announce();
  });
})();

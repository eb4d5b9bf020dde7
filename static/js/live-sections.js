// Live sections: a part of a page marked
//   data-live-section="NAME" data-live-events="ev1 ev2" [data-live-ticket="123"]
// is reloaded from the server when one of its events arrives (agent-events.js dispatches each as
// a "helpdesk:event"), and only for that ticket when data-live-ticket is set. The page's own URL
// is fetched again and the section of the same NAME swapped in: the server renders it, as on a
// reload. Bursts of events make one fetch. A section with focus inside (someone typing in its
// form) waits until focus leaves it; text typed into a field that is not focused survives.
// A section with data-live-src="URL" is fetched from that URL instead of the page's (a part the
// page does not wait for, such as the inbox's counts), and with data-live-load also right after
// the page loads.
(function () {
  "use strict";
  const DEBOUNCE_MS = 300;
  const due = new Set(); // names of sections to refresh at the next fetch
  const waiting = new Set(); // names held back while someone works in them
  let timer = null;
  let running = null;

  function sections(root, name) {
    const all = root.querySelectorAll("[data-live-section]");
    return Array.from(all).filter((el) => name === undefined || el.dataset.liveSection === name);
  }

  function wants(section, name, payload) {
    const events = (section.dataset.liveEvents || "").split(/\s+/).filter(Boolean);
    if (!events.includes(name)) return false;
    const ticket = section.dataset.liveTicket;
    return !ticket || String(payload.ticket) === ticket;
  }

  function busy(section) {
    const active = document.activeElement;
    return active !== null && active !== document.body && section.contains(active);
  }

  // Fields someone typed into, keyed by their form's action and their name.
  function typed(section) {
    const found = new Map();
    section.querySelectorAll("form").forEach((form) => {
      form.querySelectorAll("input, textarea").forEach((field) => {
        if (!field.name || field.type === "hidden" || field.value === field.defaultValue) return;
        found.set(`${form.getAttribute("action")} ${field.name}`, field.value);
      });
    });
    return found;
  }

  function restore(section, values) {
    if (!values.size) return;
    section.querySelectorAll("form").forEach((form) => {
      form.querySelectorAll("input, textarea").forEach((field) => {
        const value = values.get(`${form.getAttribute("action")} ${field.name}`);
        if (value !== undefined) field.value = value;
      });
    });
  }

  function swap(fresh, names) {
    names.forEach((name) => {
      const replacement = sections(fresh, name)[0];
      sections(document, name).forEach((current) => {
        if (busy(current)) {
          hold(name, current);
          return;
        }
        if (!replacement) return;
        const values = typed(current);
        const node = document.importNode(replacement, true);
        current.replaceWith(node);
        restore(node, values);
      });
    });
  }

  function hold(name, section) {
    if (waiting.has(name)) return;
    waiting.add(name);
    section.addEventListener("focusout", function left() {
      // focusout fires before focus lands elsewhere: look once it has.
      setTimeout(() => {
        if (busy(section)) return;
        section.removeEventListener("focusout", left);
        waiting.delete(name);
        schedule([name]);
      }, 0);
    });
  }

  // Where each section is rendered: its own URL, else the page's.
  function sourceOf(name) {
    const section = sections(document, name)[0];
    const own = section && section.dataset.liveSrc;
    return own ? new URL(own, window.location.href).href : window.location.href.split("#")[0];
  }

  async function load(url, names) {
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok || response.redirected) return; // signed out, or gone: leave it be
      const html = await response.text();
      swap(new DOMParser().parseFromString(html, "text/html"), names);
    } catch (error) {
      // Offline for a moment: the next event tries again; the page stays as it was.
    }
  }

  async function refresh() {
    timer = null;
    const names = Array.from(due);
    due.clear();
    const bySource = new Map();
    names.forEach((name) => {
      const url = sourceOf(name);
      if (!bySource.has(url)) bySource.set(url, []);
      bySource.get(url).push(name);
    });
    await Promise.all(Array.from(bySource, ([url, group]) => load(url, group)));
  }

  function schedule(names) {
    names.forEach((name) => due.add(name));
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      // One fetch at a time: a burst during a fetch makes the next one.
      running = (running || Promise.resolve()).then(refresh);
    }, DEBOUNCE_MS);
  }

  // Parts the page left out to answer sooner are fetched at once.
  const deferred = sections(document).filter((section) => "liveLoad" in section.dataset);
  deferred.forEach((section) => due.add(section.dataset.liveSection));
  if (deferred.length) running = refresh();

  document.addEventListener("helpdesk:event", (event) => {
    const { event: name, payload } = event.detail;
    const matching = sections(document).filter((section) => wants(section, name, payload || {}));
    if (!matching.length) return;
    event.preventDefault(); // handled here: no "click to refresh" notice
    const names = matching.map((section) => section.dataset.liveSection);
    schedule(names.filter((sectionName) => !waiting.has(sectionName)));
  });
})();

// Drafts are never lost: the reply and note fields of a ticket page (textareas marked
// data-draft="reply" or "note" inside [data-drafts]) are saved in localStorage per merchant,
// agent and ticket as the agent types, and put back when the page loads again (a reload from the
// live notice, a crash, an error page and back). The server says which draft went out: the page
// it redirects to after a send carries data-draft-sent="reply" (or "note"), and that draft is
// forgotten. Text the server put in the field itself (a reply held back as stale) wins.
(function () {
  "use strict";
  const SAVE_AFTER_MS = 400;
  const PREFIX = "helpdesk:draft:";
  const FORGET_AFTER_MS = 30 * 24 * 3600 * 1000; // drafts nobody came back to in a month
  const root = document.querySelector("[data-drafts]");
  if (!root) return;
  const { draftTenant, draftUser, draftTicket, draftSent } = root.dataset;
  const keyOf = (kind) => `${PREFIX}${draftTenant}:${draftUser}:${draftTicket}:${kind}`;

  // Storage can be full or switched off (private windows): drafts are then simply not kept.
  function read(key) {
    try {
      const stored = JSON.parse(window.localStorage.getItem(key) || "null");
      return stored && typeof stored.text === "string" ? stored : null;
    } catch (error) {
      return null;
    }
  }

  function write(key, text) {
    try {
      if (text.trim()) {
        window.localStorage.setItem(key, JSON.stringify({ text, savedAt: Date.now() }));
      } else {
        window.localStorage.removeItem(key);
      }
    } catch (error) {
      // nothing to do: the field still holds the text
    }
  }

  function forgetOld() {
    try {
      const now = Date.now();
      for (let i = window.localStorage.length - 1; i >= 0; i -= 1) {
        const key = window.localStorage.key(i);
        if (!key || !key.startsWith(PREFIX)) continue;
        const stored = read(key);
        if (!stored || !(now - stored.savedAt < FORGET_AFTER_MS)) window.localStorage.removeItem(key);
      }
    } catch (error) {
      // storage unavailable
    }
  }

  if (draftSent) {
    write(keyOf(draftSent), "");
    // A later reload of this page must not forget a new draft.
    const url = new URL(window.location.href);
    url.searchParams.delete("sent");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
  forgetOld();

  root.querySelectorAll("textarea[data-draft]").forEach((field) => {
    const key = keyOf(field.dataset.draft);
    const stored = read(key);
    if (stored && !field.value.trim()) {
      field.value = stored.text;
      field.classList.add("draft-restored");
    }
    let timer = null;
    const save = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      write(key, field.value);
    };
    field.addEventListener("input", () => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(save, SAVE_AFTER_MS);
    });
    field.addEventListener("blur", save);
    // A reload right after typing (the live notice) still keeps the last keystrokes.
    window.addEventListener("pagehide", () => {
      if (timer !== null) save();
    });
  });
})();

// Keyboard navigation for agents. On the ticket list: j/k choose the next or previous ticket
// (rows marked data-nav-row), Enter or o opens it (its a[data-nav-open]), x ticks its checkbox.
// On a ticket: r and n go to the reply and note boxes, u back to the list. ? shows the keys
// (templates/keyboard_help.html, in the page's language); Escape leaves a text box.
// Keys typed into a field, or with Ctrl, Alt or Meta held, are the field's, not ours.
(function () {
  "use strict";
  const help = document.getElementById("keyboard-help");
  const SELECTED = "nav-selected";
  let chosen = null; // the chosen row's ticket link: the choice outlives a live redraw of the list

  function typingIn(target) {
    if (!(target instanceof Element)) return false;
    return Boolean(target.closest("input, textarea, select, [contenteditable]:not([contenteditable=false])"));
  }

  const rows = () => Array.from(document.querySelectorAll("tr[data-nav-row]"));

  function keyOf(row) {
    const link = row.querySelector("a[data-nav-open]");
    return link ? link.getAttribute("href") : row.dataset.navRow || "";
  }

  function chosenRow(all) {
    if (chosen === null) return null;
    return all.find((row) => keyOf(row) === chosen) || null;
  }

  function choose(step) {
    const all = rows();
    if (!all.length) return false;
    const current = chosenRow(all);
    let index = current ? all.indexOf(current) + step : step > 0 ? 0 : all.length - 1;
    index = Math.max(0, Math.min(all.length - 1, index));
    all.forEach((row) => {
      row.classList.remove(SELECTED);
      row.removeAttribute("aria-current");
    });
    const row = all[index];
    row.classList.add(SELECTED);
    row.setAttribute("aria-current", "true");
    chosen = keyOf(row);
    row.scrollIntoView({ block: "nearest" });
    return true;
  }

  function openChosen() {
    const row = chosenRow(rows());
    const link = row && row.querySelector("a[data-nav-open]");
    if (!link) return false;
    window.location.assign(link.href);
    return true;
  }

  function tickChosen() {
    const row = chosenRow(rows());
    const box = row && row.querySelector("input[type=checkbox]");
    if (!box) return false;
    box.click(); // fires change, as a mouse click would
    return true;
  }

  function focusBox(kind) {
    const box = document.querySelector(`textarea[data-draft="${kind}"]`);
    if (!box) return false;
    box.scrollIntoView({ block: "center" });
    box.focus();
    return true;
  }

  function backToList() {
    const list = help && help.dataset.listUrl;
    if (!list || !document.querySelector("[data-ticket-presence], [data-drafts]")) return false;
    // Back keeps the list's filters and place when the agent came from it.
    const from = document.referrer ? new URL(document.referrer) : null;
    if (from && from.origin === window.location.origin && from.pathname === list) {
      window.history.back();
    } else {
      window.location.assign(list);
    }
    return true;
  }

  function toggleHelp(show) {
    if (!help) return false;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) help.querySelector("[data-keyboard-help-close]").focus();
    return true;
  }

  const ACTIONS = {
    j: () => choose(1),
    k: () => choose(-1),
    o: openChosen,
    Enter: openChosen,
    x: tickChosen,
    r: () => focusBox("reply"),
    n: () => focusBox("note"),
    u: backToList,
    "?": () => toggleHelp(),
  };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
    if (event.key === "Escape") {
      if (help && !help.hidden) {
        toggleHelp(false);
        event.preventDefault();
      } else if (typingIn(event.target)) {
        event.target.blur();
        event.preventDefault();
      }
      return;
    }
    if (typingIn(event.target)) return;
    if (help && !help.hidden && event.key !== "?") return;
    // Enter on a focused link or button is that control's own.
    if (event.key === "Enter" && event.target instanceof Element && event.target.closest("a, button, summary")) return;
    const action = ACTIONS[event.key];
    if (action && action()) event.preventDefault();
  });

  if (help) {
    help.addEventListener("click", (event) => {
      if (event.target === help || event.target.closest("[data-keyboard-help-close]")) toggleHelp(false);
    });
  }
})();

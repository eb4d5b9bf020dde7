// The reply composer's macro picker (templates/tickets/ticket/macros.html): choosing a macro asks
// the server for its text filled in for this ticket and inserts it at the cursor of the reply box
// (textarea[data-draft="reply"]). An "input" event follows, so drafts.js saves the draft.
// Listeners sit on the document, so a picker put back by a live update keeps working.
(function () {
  "use strict";
  if (window.helpdeskMacros) return; // the script may be included once per picker
  window.helpdeskMacros = true;

  function csrfToken(form) {
    const field = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function insertAtCursor(textarea, text) {
    const start = textarea.selectionStart ?? textarea.value.length;
    const end = textarea.selectionEnd ?? start;
    const before = textarea.value.slice(0, start);
    const after = textarea.value.slice(end);
    textarea.value = before + text + after;
    const cursor = start + text.length;
    textarea.focus();
    textarea.setSelectionRange(cursor, cursor);
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function showWarnings(picker, warnings) {
    const box = picker.querySelector("[data-macro-warnings]");
    if (!box) return;
    box.textContent = warnings.join(" ");
    box.hidden = warnings.length === 0;
  }

  document.addEventListener("change", async (event) => {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.matches("[data-macro-select]")) return;
    const picker = select.closest("[data-macro-picker]");
    const form = select.closest("form");
    const textarea = form && form.querySelector('textarea[data-draft="reply"]');
    const pk = select.value;
    if (!picker || !textarea || !pk) return;
    const url = picker.dataset.macroUrl.replace(/\/0\/$/, `/${pk}/`);
    select.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      insertAtCursor(textarea, body.text);
      showWarnings(picker, body.warnings || []);
    } catch (error) {
      showWarnings(picker, [picker.dataset.macroFailed]);
    } finally {
      select.disabled = false;
      select.value = "";
    }
  });
})();

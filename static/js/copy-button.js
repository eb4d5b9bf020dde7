// Buttons marked data-copy="#id" copy that element's text (the forwarding address, the
// channel secret) to the clipboard and say so for a moment. A module file, not an inline
// handler, so the Content-Security-Policy can keep forbidding inline script.
(function () {
  "use strict";

  function selectText(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const label = button.textContent;
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = button.dataset.copiedLabel || label;
        button.dataset.copied = "true";
        setTimeout(() => {
          button.textContent = label;
          delete button.dataset.copied;
        }, 2000);
      } catch (error) {
        // No clipboard (an insecure origin, or permission refused): select the text so
        // Ctrl+C / Cmd+C copies it.
        selectText(source);
      }
    });
  });
})();

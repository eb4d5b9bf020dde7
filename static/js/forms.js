// Selects marked data-autosubmit send their form when changed (the language and merchant
// pickers). Kept out of inline handlers so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
})();

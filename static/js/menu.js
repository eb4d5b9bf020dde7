// On a phone the header's nav and the person's controls fold behind the "Menu" button
// (base.html); without JavaScript they simply wrap under the brand (helpdesk.css).
(function () {
  "use strict";
  const bar = document.querySelector("[data-topbar]");
  const toggle = bar && bar.querySelector(".menu-toggle");
  if (!toggle) return;
  bar.setAttribute("data-collapsible", "");
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    bar.toggleAttribute("data-open", open);
  });
})();

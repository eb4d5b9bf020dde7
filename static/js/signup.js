// The signup form fills the shop address from the shop name (lower case, hyphens) until the
// person types an address of their own.
(function () {
  "use strict";
  const form = document.querySelector("form[data-slug-from]");
  if (!form) return;
  const name = document.getElementById(form.dataset.slugFrom);
  const slug = document.getElementById(form.dataset.slugTo);
  if (!name || !slug) return;
  let typedByHand = slug.value !== "";

  function slugOf(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 60)
      .replace(/-+$/g, "");
  }

  name.addEventListener("input", function () {
    if (!typedByHand) slug.value = slugOf(name.value);
  });
  slug.addEventListener("input", function () {
    typedByHand = slug.value !== "";
  });
})();

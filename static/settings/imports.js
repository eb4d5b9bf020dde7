// Settings → Import. On the upload form: refuse a file over the size limit before it is sent.
// On an import's page: poll its progress (same-origin JSON, so the Content-Security-Policy
// keeps forbidding inline script) every second while it runs, move the bar and the counts, and
// reload once it has finished so the rows that were not imported are listed.
(function () {
  "use strict";

  const upload = document.querySelector("form[data-import-upload]");
  if (upload) {
    const input = upload.querySelector("input[type=file][data-max-bytes]");
    const error = upload.querySelector("[data-file-error]");
    const hint = upload.querySelector("[data-too-large]");
    const check = () => {
      const file = input.files && input.files[0];
      const tooLarge = file && file.size > Number(input.dataset.maxBytes);
      const message = tooLarge && hint ? hint.dataset.tooLarge : "";
      input.setCustomValidity(message);
      if (error) {
        error.textContent = message;
        error.hidden = !message;
      }
    };
    input.addEventListener("change", check);
  }

  const panel = document.querySelector("[data-import-progress]");
  if (!panel) return;
  const finished = (state) => state === "done" || state === "failed";
  if (finished(panel.dataset.state)) return;

  const bar = panel.querySelector("[data-progress-bar]");
  const set = (selector, text) => {
    const element = panel.querySelector(selector);
    if (element) element.textContent = text;
  };

  async function poll() {
    let progress;
    try {
      const response = await fetch(panel.dataset.importProgress, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) throw new Error(String(response.status));
      progress = await response.json();
    } catch (error) {
      setTimeout(poll, 3000); // the network or the server hiccuped: try again a bit later
      return;
    }
    bar.value = progress.percent;
    bar.textContent = progress.percent + "%";
    set("[data-progress-percent]", progress.percent);
    set("[data-progress-processed]", progress.processed_rows);
    if (progress.total_rows !== null) set("[data-progress-total]", progress.total_rows);
    ["created", "updated", "unchanged", "failed"].forEach((name) =>
      set('[data-count="' + name + '"]', progress[name])
    );
    const state = panel.querySelector("[data-progress-state]");
    if (state) {
      state.textContent = progress.state_label;
      state.className = "badge import-" + progress.state;
    }
    panel.dataset.state = progress.state;
    if (finished(progress.state)) {
      window.location.reload();
      return;
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();

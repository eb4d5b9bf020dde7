// The helpdesk's live chat widget, for a merchant's store. One tag, no build step:
//
//   <script src="https://help.example.com/static/chat/widget.js" data-key="PUBLIC KEY" async></script>
//
// It loads its settings and words from the helpdesk (in the language of the page's <html lang>),
// opens a WebSocket to /ws/chat/<key>/ and keeps the visitor's signed token in the store page's
// localStorage (a cookie of the helpdesk's would be third-party here, and blocked). Messages not
// yet acknowledged are kept there too and sent again, with the same id, after a reconnect: the
// helpdesk files each id once. Everything is drawn in a shadow root, apart from the store's CSS.
(function () {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.dataset.key || window.__helpdeskChat) return;
  window.__helpdeskChat = true;
  const KEY = script.dataset.key;
  const BASE = new URL(script.src, location.href).origin;
  const LANG = document.documentElement.lang || navigator.language || "en";
  const STORE = "helpdesk-chat:" + KEY + ":";
  const PING_MS = 20000;
  const TYPING_EVERY_MS = 2000;
  const TYPING_SHOWN_MS = 5000;

  let config = null;
  let socket = null;
  let retryMs = 1000;
  let welcomed = false;
  let profile = {};
  let available = true;
  let typedAt = 0;
  let typingTimer = null;
  let lastAgent = null;
  const shown = new Map(); // message id -> its element

  // --- what is kept in the store page's localStorage ---

  function load(name, fallback) {
    try {
      const value = localStorage.getItem(STORE + name);
      return value === null ? fallback : JSON.parse(value);
    } catch (error) {
      return fallback;
    }
  }
  function keep(name, value) {
    try {
      localStorage.setItem(STORE + name, JSON.stringify(value));
    } catch (error) {
      /* private mode: the chat still works, without memory */
    }
  }
  const pending = () => load("pending", []);
  function setPending(list) {
    keep("pending", list);
  }

  function newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function say(name, values) {
    let text = (config && config.words[name]) || name;
    Object.entries(values || {}).forEach(([key, value]) => {
      text = text.replace("{" + key + "}", value);
    });
    return text;
  }

  // --- the page ---

  const host = document.createElement("div");
  host.id = "helpdesk-chat";
  const root = host.attachShadow({ mode: "open" });
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = BASE + "/static/chat/widget.css";
  root.appendChild(style);

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => {
      if (name === "text") node.textContent = value;
      else if (name === "hidden") node.hidden = value;
      else node.setAttribute(name, value);
    });
    (children || []).forEach((child) => node.appendChild(child));
    return node;
  }

  const ui = {};

  function build() {
    ui.bubble = el("button", { class: "bubble", type: "button", "aria-expanded": "false", text: say("open") });
    ui.title = el("strong", { class: "title", text: say("title") });
    ui.agent = el("span", { class: "agent", hidden: true });
    ui.close = el("button", { class: "close", type: "button", "aria-label": say("close"), text: "×" });
    ui.status = el("p", { class: "status", role: "status", hidden: true });
    ui.error = el("p", { class: "error", role: "alert", hidden: true });
    ui.log = el("ol", { class: "log", "aria-live": "polite" });
    ui.typing = el("p", { class: "typing", hidden: true });
    ui.text = el("textarea", { class: "text", rows: "2", placeholder: say("placeholder"), "aria-label": say("message") });
    ui.send = el("button", { class: "send", type: "submit", text: say("send") });
    ui.file = el("input", { type: "file", class: "file", accept: config.accept.join(","), hidden: true });
    ui.attach = el("button", { class: "attach", type: "button", title: say("attach"), "aria-label": say("attach"), text: "📎" });
    ui.supervisor = el("button", { class: "supervisor", type: "button", text: say("supervisor") });
    ui.composer = el("form", { class: "composer" }, [ui.text, ui.attach, ui.file, ui.send]);
    ui.prechat = buildPrechat();
    ui.offline = buildOffline();
    ui.panel = el("section", { class: "panel", role: "dialog", "aria-label": say("title"), hidden: true }, [
      el("header", {}, [ui.title, ui.agent, ui.close]),
      ui.status,
      ui.log,
      ui.typing,
      ui.error,
      ui.prechat,
      ui.offline,
      ui.composer,
      el("footer", {}, [ui.supervisor]),
    ]);
    root.appendChild(ui.bubble);
    root.appendChild(ui.panel);
    document.body.appendChild(host);

    ui.bubble.addEventListener("click", () => setOpen(ui.panel.hidden));
    ui.close.addEventListener("click", () => setOpen(false));
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = ui.text.value.trim();
      if (!text) return;
      ui.text.value = "";
      sendMessage(text, "message");
    });
    ui.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.composer.requestSubmit();
      }
    });
    ui.text.addEventListener("input", () => {
      const now = Date.now();
      if (now - typedAt < TYPING_EVERY_MS) return;
      typedAt = now;
      transmit({ type: "typing" });
    });
    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      const file = ui.file.files[0];
      ui.file.value = "";
      if (file) upload(file);
    });
    ui.supervisor.addEventListener("click", () => sendMessage(say("supervisor_text"), "supervisor"));
    if (load("open", false)) setOpen(true);
  }

  function field(name, type) {
    const input = el("input", { name, type: type || "text", autocomplete: name === "order" ? "off" : name });
    const label = el("label", {}, [el("span", { text: say(name) }), input]);
    return label;
  }

  function buildPrechat() {
    const fields = config.prechat.fields;
    const form = el("form", { class: "prechat", hidden: true }, [el("p", { class: "lead", text: say("prechat_title") })]);
    fields.forEach((name) => {
      const label = field(name, name === "email" ? "email" : name === "phone" ? "tel" : "text");
      if (config.prechat.required.includes(name)) label.querySelector("input").required = true;
      form.appendChild(label);
    });
    if (config.personas.length) {
      const choices = el("fieldset", { class: "personas" }, [el("legend", { text: say("persona") })]);
      config.personas.forEach((persona, index) => {
        const input = el("input", { type: "radio", name: "persona", value: persona.slug });
        if (index === 0) input.checked = true;
        choices.appendChild(el("label", {}, [input, el("span", { text: persona.name + (persona.description ? " · " + persona.description : "") })]));
      });
      form.appendChild(choices);
    }
    form.appendChild(el("button", { type: "submit", text: say("start") }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      transmit({ type: "profile", profile: formValues(form) }, true);
    });
    return form;
  }

  function buildOffline() {
    const form = el("form", { class: "offline", hidden: true }, [
      el("p", { class: "lead", text: say("offline_title") }),
      el("p", { class: "muted", text: say("offline_text") }),
      field("name"),
      field("email", "email"),
      field("phone", "tel"),
      el("label", {}, [el("span", { text: say("message") }), el("textarea", { name: "text", rows: "3", required: "" })]),
      el("button", { type: "submit", text: say("leave") }),
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = formValues(form);
      if (!values.email && !values.phone) {
        showError(say("email_or_phone"));
        return;
      }
      const text = values.text;
      delete values.text;
      sendMessage(text, "left_message", values);  // the form is cleared once it is acknowledged
    });
    return form;
  }

  function formValues(form) {
    const values = {};
    new FormData(form).forEach((value, name) => {
      values[name] = String(value).trim();
    });
    return values;
  }

  function setOpen(open) {
    ui.panel.hidden = !open;
    ui.bubble.setAttribute("aria-expanded", String(open));
    keep("open", open);
    if (open) {
      connect();
      markRead();
      if (!ui.composer.hidden) ui.text.focus();
    }
  }

  function showError(text) {
    ui.error.textContent = text || "";
    ui.error.hidden = !text;
  }

  function showStatus(text) {
    ui.status.textContent = text || "";
    ui.status.hidden = !text;
  }

  function layout() {
    const hasHistory = shown.size > 0;
    const wantsPrechat =
      (config.prechat.fields.length || config.personas.length) &&
      !hasHistory &&
      !Object.values(profile).some(Boolean);
    ui.prechat.hidden = !(available && wantsPrechat);
    ui.offline.hidden = available;
    ui.composer.hidden = !available || !ui.prechat.hidden;
    ui.supervisor.hidden = !available || !hasHistory;
  }

  // --- messages ---

  function initials(author) {
    return (author && author.initials) || "?";
  }

  function render(message) {
    let item = shown.get(message.id);
    if (!item) {
      item = el("li", { class: "message " + message.from, "data-id": message.id });
      shown.set(message.id, item);
      ui.log.appendChild(item);
    }
    item.replaceChildren();
    if (message.from === "agent") {
      lastAgent = message.author;
      item.appendChild(el("span", { class: "avatar", "aria-hidden": "true", text: initials(message.author) }));
      item.appendChild(el("span", { class: "who", text: (message.author && message.author.name) || say("agent") }));
      ui.agent.hidden = false;
      ui.agent.replaceChildren(el("span", { class: "avatar", "aria-hidden": "true", text: initials(message.author) }), document.createTextNode(message.author.name));
    }
    const body = el("p", { class: "body", text: message.text || "" });
    (message.files || []).forEach((name) => body.appendChild(el("span", { class: "file-name", text: "📎 " + name })));
    item.appendChild(body);
    if (message.from === "visitor") {
      item.dataset.state = message.state || "sent";
      if (message.at) item.dataset.at = message.at;
      if (message.kind) item.dataset.kind = message.kind;
      const state = el("span", { class: "state" });
      state.textContent = message.error || say(item.dataset.state);
      item.appendChild(state);
      if (message.state === "failed") {
        const retry = el("button", { type: "button", class: "retry", text: say("retry") });
        retry.addEventListener("click", () => {
          const again = pending().filter((p) => p.id !== message.id);
          again.push({ id: message.id, text: message.text, kind: message.kind || "message" });
          setPending(again);
          render(Object.assign({}, message, { state: "sending", error: "" }));
          transmit({ type: "message", id: message.id, text: message.text, kind: message.kind || "message", page: location.href });
        });
        item.appendChild(retry);
      }
    }
    ui.log.scrollTop = ui.log.scrollHeight;
    layout();
  }

  function setState(id, state, error) {
    const item = shown.get(id);
    if (!item) return;
    const text = item.querySelector(".body").firstChild;
    const words = text && text.nodeType === Node.TEXT_NODE ? text.textContent : "";
    render({ id, from: "visitor", text: words, state, error, kind: item.dataset.kind });
  }

  function sendMessage(text, kind, contact) {
    const message = { id: newId(), text, kind, profile: contact || null };
    setPending(pending().concat([message]));
    render({ id: message.id, from: "visitor", text, state: "sending", kind });
    const frame = { type: "message", id: message.id, text, kind, page: location.href };
    if (contact) frame.profile = contact;
    transmit(frame);
    connect();
    showError("");
  }

  function upload(file) {
    showError("");
    if (file.size > config.max_upload_bytes) {
      showError(say("too_large", { limit: config.max_upload_text }));
      return;
    }
    if (config.accept.indexOf(file.type) === -1) {
      showError(say("bad_type"));
      return;
    }
    const id = newId();
    render({ id, from: "visitor", text: "", files: [file.name], state: "sending" });
    const form = new FormData();
    form.append("token", load("token", ""));
    form.append("id", id);
    form.append("page", location.href);
    form.append("file", file);
    fetch(BASE + config.upload + "?lang=" + encodeURIComponent(LANG), { method: "POST", body: form, mode: "cors" })
      .then((response) => response.json().then((answer) => ({ response, answer })))
      .then(({ response, answer }) => {
        if (response.ok) {
          setFileState(id, file.name, "sent");
        } else {
          setFileState(id, file.name, "failed", answer.message);
          showError(answer.message);
        }
      })
      .catch(() => {
        setFileState(id, file.name, "failed", say("upload_failed"));
        showError(say("upload_failed"));
      });
  }

  function setFileState(id, name, state, error) {
    render({ id, from: "visitor", text: "", files: [name], state, error });
  }

  function markRead() {
    if (!ui.panel || ui.panel.hidden || document.hidden) return;
    transmit({ type: "read" });
  }

  // --- the socket ---

  // Frames that must not be lost while the socket (re)connects wait here; messages need not:
  // they wait in ``pending`` and are sent again after the welcome.
  const waiting = [];

  function transmit(frame, keep) {
    if (socket && socket.readyState === WebSocket.OPEN && welcomed) {
      socket.send(JSON.stringify(frame));
    } else if (keep) {
      waiting.push(frame);
      connect();
    }
  }

  function connect() {
    if (socket) return;
    socket = new WebSocket(BASE.replace(/^http/, "ws") + config.socket);
    socket.onopen = () => {
      retryMs = 1000;
      socket.send(JSON.stringify({ type: "hello", token: load("token", ""), lang: LANG, page: location.href }));
    };
    socket.onmessage = (event) => heard(JSON.parse(event.data));
    socket.onclose = (event) => {
      socket = null;
      welcomed = false;
      if (event.code === 4403 || event.code === 4404 || event.code === 4409) return; // refused: retrying cannot help
      showStatus(say("reconnecting"));
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  function heard(event) {
    if (event.type === "welcome") {
      welcomed = true;
      showStatus("");
      keep("token", event.token);
      profile = event.profile || {};
      available = event.available;
      event.history.forEach((message) => render(message));
      const seenAt = event.agent_read_at;
      // What was never acknowledged goes again, under its own id: filed once however often.
      const filed = new Set(event.history.map((message) => message.id));
      setPending(pending().filter((message) => !filed.has(message.id)));
      pending().forEach((message) => {
        render({ id: message.id, from: "visitor", text: message.text, state: "sending", kind: message.kind });
        const frame = { type: "message", id: message.id, text: message.text, kind: message.kind, page: location.href };
        if (message.profile) frame.profile = message.profile;
        transmit(frame);
      });
      waiting.splice(0).forEach((frame) => transmit(frame));
      if (seenAt) markSeen(seenAt);
      layout();
      markRead();
    } else if (event.type === "ack") {
      setPending(pending().filter((message) => message.id !== event.id));
      setState(event.id, "sent");
      if (!available) {
        ui.offline.reset();
        ui.offline.hidden = true;
        showStatus(say("left"));
      }
    } else if (event.type === "error") {
      if (event.id) {
        setPending(pending().filter((message) => message.id !== event.id));
        setState(event.id, "failed", event.message);
      }
      showError(event.message);
    } else if (event.type === "profile") {
      profile = event.profile;
      showError("");
      layout();
    } else if (event.type === "message") {
      render(event.message);
      ui.typing.hidden = true;
      markRead();
    } else if (event.type === "typing") {
      ui.typing.textContent = say("typing", { name: event.name || say("agent") });
      ui.typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => (ui.typing.hidden = true), TYPING_SHOWN_MS);
    } else if (event.type === "seen") {
      markSeen(event.at);
    } else if (event.type === "refused") {
      showError(say("refused") + " " + event.message);
    }
  }

  // An agent had the chat open at ``at``: what the visitor had sent by then is seen (live, that
  // is everything sent; restored history carries each message's time).
  function markSeen(at) {
    const until = Date.parse(at);
    shown.forEach((item) => {
      const sentAt = item.dataset.at ? Date.parse(item.dataset.at) : 0;
      if (item.classList.contains("visitor") && item.dataset.state === "sent" && sentAt <= until) {
        item.dataset.state = "seen";
        item.querySelector(".state").textContent = say("seen");
      }
    });
  }

  setInterval(() => transmit({ type: "ping" }), PING_MS);
  document.addEventListener("visibilitychange", markRead);

  fetch(BASE + "/inbound/chat/" + encodeURIComponent(KEY) + "/config/?lang=" + encodeURIComponent(LANG), { mode: "cors" })
    .then((response) => response.json().then((answer) => ({ response, answer })))
    .then(({ response, answer }) => {
      if (!response.ok) {
        console.warn("helpdesk chat:", answer.message);
        return;
      }
      config = answer;
      available = config.available;
      const start = () => {
        build();
        layout();
        // A returning visitor (or one with messages waiting) reconnects at once.
        if (load("token", "") || pending().length) connect();
      };
      if (document.body) start();
      else document.addEventListener("DOMContentLoaded", start);
    })
    .catch((error) => console.warn("helpdesk chat: could not load", error));
})();

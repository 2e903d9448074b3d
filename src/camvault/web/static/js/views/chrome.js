// Everything around the list: header, connection banner, toasts and the login form.

import { h } from "./dom.js";

export function renderHeader(root, state, actions) {
  const user = state.user;
  const themeLabel = { auto: "Theme: system", dark: "Theme: dark", light: "Theme: light" }[state.ui.theme];
  root.replaceChildren(
    h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }, "◆"), "camvault"),
    user
      ? h("div", { class: "who" },
          h("span", { class: `status-pill ${state.connection.status}`, id: "connection" },
            h("span", { class: "dot", "aria-hidden": "true" }),
            { live: "Live", offline: "Offline", reconnecting: "Reconnecting" }[state.connection.status] ?? "Connecting"),
          h("span", { class: "presence", title: "Online now" },
            `${state.online.length} online: ${state.online.join(", ")}`),
          h("button", { type: "button", class: "ghost", id: "theme", onclick: actions.cycleTheme }, themeLabel),
          h("span", { class: "user" }, `${user.username}${user.role === "admin" ? " (admin)" : ""}`),
          h("button", { type: "button", class: "ghost", id: "logout", onclick: actions.logout }, "Log out"))
      : h("button", { type: "button", class: "ghost", id: "theme", onclick: actions.cycleTheme }, themeLabel),
  );
}

export function renderBanner(root, state, actions) {
  const c = state.connection;
  if (!state.user || c.status === "live" || c.status === "idle") {
    root.className = "banner live";
    root.replaceChildren();
    root.hidden = true;
    return;
  }
  root.hidden = false;
  if (c.status === "offline") {
    root.className = "banner offline";
    root.replaceChildren("Offline — changes can't be made until the network is back.");
    return;
  }
  if (c.status === "reconnecting" && c.nextAttemptAt) {
    const seconds = Math.max(0, Math.ceil((c.nextAttemptAt - state.ui.now) / 1000));
    root.className = "banner reconnecting";
    root.replaceChildren(
      `Connection lost — reconnecting in ${seconds} s. `,
      h("button", { type: "button", class: "link", id: "retry-now", onclick: actions.retryNow }, "Retry now"));
    return;
  }
  root.className = "banner reconnecting";
  root.replaceChildren(c.status === "connecting" ? "Connecting…" : "Reconnecting…");
}

export function renderToasts(root, state, actions) {
  root.replaceChildren(...state.ui.toasts.map((toast) =>
    h("div", { class: `toast ${toast.kind}`, role: toast.kind === "error" ? "alert" : "status" },
      h("div", { class: "toast-text" },
        toast.title ? h("strong", {}, toast.title) : null,
        h("span", {}, toast.message)),
      h("button", { type: "button", class: "ghost close", "aria-label": "Dismiss",
                    onclick: () => actions.dismissToast(toast.id) }, "×"))));
}

export function renderLogin(root, state, actions) {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password",
                                autocomplete: "current-password", required: true });
  const message = state.ui.loginMessage;
  root.replaceChildren(
    h("form", { class: "login card", onsubmit: (event) => {
        event.preventDefault();
        actions.login(username.value, password.value);
      } },
      h("h1", {}, "Sign in to camvault"),
      message ? h("p", { class: `notice ${message.kind}`, role: "alert" }, message.text) : null,
      h("label", { for: "username" }, "Username"), username,
      h("label", { for: "password" }, "Password"), password,
      h("button", { type: "submit", class: "primary", disabled: state.ui.busy }, "Sign in")));
  username.focus();
}

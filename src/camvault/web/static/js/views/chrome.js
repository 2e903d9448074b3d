// Everything around the list: header, connection banner, toasts and the login form.

import { pagesFor } from "../routes.js";
import { h } from "./dom.js";

const THEME_LABELS = { auto: "Theme: system", dark: "Theme: dark", light: "Theme: light" };
const STATUS_LABELS = {
  live: "Live", offline: "Offline", reconnecting: "Reconnecting", limited: "Not live",
};
let header = null; // the header's elements, built once per signed-in user

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function buildHeader(root, user, actions) {
  const theme = h("button", { type: "button", class: "ghost", id: "theme", onclick: actions.cycleTheme });
  const brand = h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }, "◆"), "camvault");
  if (!user) {
    root.replaceChildren(brand, theme);
    return { root, key: "", theme, links: [] };
  }
  const links = pagesFor(user).map((page) =>
    h("a", { href: page.hash, class: "nav-link", dataset: { page: page.name } }, page.label));
  const statusText = h("span", {});
  const status = h("span", { class: "status-pill", id: "connection" },
    h("span", { class: "dot", "aria-hidden": "true" }), statusText);
  const presence = h("span", { class: "presence", title: "Online now" });
  root.replaceChildren(
    brand,
    h("nav", { class: "nav", "aria-label": "Pages" }, links),
    h("div", { class: "who" }, status, presence, theme,
      h("span", { class: "user" }, `${user.username}${user.role === "admin" ? " (admin)" : ""}`),
      h("button", { type: "button", class: "ghost", id: "logout", onclick: actions.logout }, "Log out")));
  return { root, key: `${user.username}|${user.role}`, theme, links, status, statusText, presence };
}

/** The header is built once per user and then only its changing parts follow the state. */
export function renderHeader(root, state, actions) {
  const user = state.user;
  const key = user ? `${user.username}|${user.role}` : "";
  if (!header || header.root !== root || header.key !== key) header = buildHeader(root, user, actions);
  setText(header.theme, THEME_LABELS[state.ui.theme]);
  if (!user) return;
  const status = state.connection.status;
  const pill = `status-pill ${status}`;
  if (header.status.className !== pill) header.status.className = pill;
  setText(header.statusText, STATUS_LABELS[status] ?? "Connecting");
  setText(header.presence, `${state.online.length} online: ${state.online.join(", ")}`);
  for (const link of header.links) {
    const current = link.dataset.page === state.ui.view;
    if (current !== link.hasAttribute("aria-current")) {
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }
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
  if (c.status === "limited") {
    root.className = "banner offline";
    root.replaceChildren(
      "This page is not live: your account has too many pages open. Close one, then ",
      h("button", { type: "button", class: "link", id: "retry-now", onclick: actions.retryNow }, "retry"),
      ".");
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

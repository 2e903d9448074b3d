// Account (everyone): change your own password. The server's policy message is shown as
// it is, so the rule that refused the password is named.

import { h } from "./dom.js";

export function createAccountView(root, actions) {
  const field = (id, label, autocomplete) => {
    const input = h("input", { id, name: id, type: "password", autocomplete, required: true, maxlength: 1024 });
    return { input, el: h("div", { class: "field" }, h("label", { for: id }, label), input) };
  };
  const current = field("current-password", "Current password", "current-password");
  const next = field("new-password-1", "New password", "new-password");
  const again = field("new-password-2", "New password again", "new-password");
  const message = h("p", { class: "notice", id: "account-message", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", id: "change-password" }, "Change password");
  const who = h("p", { class: "hint" });
  const form = h("form", { class: "card account", "aria-labelledby": "password-title",
    onsubmit: (event) => {
      event.preventDefault();
      actions.changePassword(current.input.value, next.input.value, again.input.value);
    } },
    h("h2", { id: "password-title" }, "Change your password"),
    h("p", { class: "hint", id: "password-policy" },
      "8 to 1024 characters; not a common password, not only a few distinct characters, and more than your username. ",
      "Your other sessions are signed out; this one stays."),
    current.el, next.el, again.el, message,
    h("div", { class: "buttons" }, submit));
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1", class: "page-title" }, "Account"), who),
    form);

  let shown = null;
  return function render(state) {
    const a = state.account;
    who.textContent = `Signed in as ${state.user?.username ?? ""}${state.user?.role === "admin" ? ", an admin" : ""}.`;
    if (a === shown) return;
    shown = a;
    submit.disabled = Boolean(a.busy);
    message.hidden = !a.message;
    message.className = `notice ${a.message?.kind ?? ""}`;
    message.setAttribute("role", a.message?.kind === "error" ? "alert" : "status");
    message.textContent = a.message?.text ?? "";
    if (a.message?.kind === "success") form.reset();
  };
}

// Users (admins only): the accounts table, a form to create one, and per row: role,
// disable/enable, set a password. Rows are kept by username and rebuilt only when what
// they show changes; every change goes through actions and comes back through the store.

import { exact } from "../format.js";
import { h, setChildren } from "./dom.js";

export function createUsersView(root, actions) {
  const rowCache = new Map(); // username -> {key, el, role}
  const username = h("input", { id: "new-username", name: "username", autocomplete: "off",
                                required: true, maxlength: 64 });
  const password = h("input", { id: "new-password", name: "password", type: "password",
                                autocomplete: "new-password", required: true });
  const role = h("select", { id: "new-role", name: "role" },
    h("option", { value: "user" }, "User"), h("option", { value: "admin" }, "Admin"));
  const createButton = h("button", { type: "submit", class: "primary", id: "create-user" }, "Create user");
  const formError = h("p", { class: "notice error", role: "alert", hidden: true });
  const form = h("form", { class: "card create-user", "aria-labelledby": "create-user-title",
    onsubmit: (event) => {
      event.preventDefault();
      actions.createAccount(username.value.trim(), role.value, password.value);
    } },
    h("h2", { id: "create-user-title" }, "New account"),
    h("div", { class: "form-row" },
      h("div", { class: "field" }, h("label", { for: "new-username" }, "Username"), username),
      h("div", { class: "field" }, h("label", { for: "new-role" }, "Role"), role),
      h("div", { class: "field" }, h("label", { for: "new-password" }, "Password"), password),
      createButton),
    h("p", { class: "hint" }, "At least 8 characters, not a common password and not just the username. ",
      "The user can change it later under Account."),
    formError);

  const notice = h("p", { class: "notice error", role: "alert", id: "users-error", hidden: true });
  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty-line" }, "Loading accounts…");
  const table = h("table", { class: "data users-table", id: "users-table" },
    h("caption", { class: "visually-hidden" }, "Accounts"),
    h("thead", {}, h("tr", {}, ["User", "Role", "Status", "Created", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  root.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1", class: "page-title" }, "Users"),
      h("p", { class: "hint" }, "Disabling an account signs it out everywhere at once. ",
        "At least one active admin must remain.")),
    form, notice, h("div", { class: "card table-card" }, empty, table));

  function buildRow(account, me) {
    const name = account.username;
    const select = h("select", { "aria-label": `Role of ${name}`, dataset: { action: "role" },
      onchange: () => actions.setRole(name, select.value) },
      h("option", { value: "user" }, "User"), h("option", { value: "admin" }, "Admin"));
    select.value = account.role;
    const you = name === me ? h("span", { class: "tag" }, "you") : null;
    const el = h("tr", { class: account.disabled ? "disabled" : null, dataset: { username: name, focusRow: `user:${name}` } },
      h("th", { scope: "row" }, name, you),
      h("td", {}, select),
      h("td", {}, h("span", { class: `badge ${account.disabled ? "stale" : "free"}` }, account.disabled ? "disabled" : "active")),
      h("td", { title: exact(account.created_at) }, new Date(account.created_at).toLocaleDateString()),
      h("td", {}, h("div", { class: "row-actions" },
        account.disabled
          ? h("button", { type: "button", dataset: { action: "enable" }, "aria-label": `Enable ${name}`,
                          onclick: () => actions.enableAccount(name) }, "Enable")
          : h("button", { type: "button", class: "danger", dataset: { action: "disable" }, "aria-label": `Disable ${name}`,
                          onclick: () => actions.openAccountDialog("disableUser", name) }, "Disable"),
        h("button", { type: "button", dataset: { action: "password" }, "aria-label": `Set a new password for ${name}`,
                      onclick: () => actions.openAccountDialog("setPassword", name) }, "Set password"))));
    return { el, select };
  }

  return function render(state, prev) {
    const s = state.accounts;
    if (prev && prev.accounts === s) return;
    formError.hidden = !s.formError;
    formError.textContent = s.formError ?? "";
    notice.hidden = !s.error;
    notice.textContent = s.error ?? "";
    createButton.disabled = Boolean(s.busy);
    if (s.created && s.created !== prev?.accounts.created) {
      form.reset();
      username.focus();
    }
    const list = s.list;
    empty.hidden = Boolean(list?.length);
    table.hidden = !list?.length;
    if (!list) {
      empty.textContent = s.loadError ?? "Loading accounts…";
      return;
    }
    if (!list.length) empty.textContent = "No accounts yet.";
    const me = state.user?.username;
    const focused = document.activeElement;
    let refocus = null;
    const rows = list.map((account) => {
      const key = [account.role, account.disabled, account.created_at, me].join("|");
      const cached = rowCache.get(account.username);
      if (cached && cached.key === key) {
        // A refused role change leaves the select showing the old role again.
        if (cached.select.value !== account.role) cached.select.value = account.role;
        return cached.el;
      }
      if (cached && focused && cached.el.contains(focused)) {
        refocus = { username: account.username, action: focused.dataset?.action };
      }
      const built = buildRow(account, me);
      rowCache.set(account.username, { key, ...built });
      return built.el;
    });
    setChildren(tbody, rows);
    if (refocus) focusIn(tbody, refocus.username, refocus.action);
  };
}

function focusIn(tbody, username, action) {
  const row = tbody.querySelector(`tr[data-username="${CSS.escape(username)}"]`);
  const target = (action && row?.querySelector(`[data-action="${CSS.escape(action)}"]`))
    ?? row?.querySelector("button, select");
  target?.focus();
}

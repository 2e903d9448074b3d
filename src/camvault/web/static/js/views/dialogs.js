// Dialogs, from state.ui.dialog. A native modal <dialog> gives the focus trap and Escape;
// focus goes back to the element that opened it. A dialog is built when it opens and then
// only its live parts (progress, per-file status, versions, errors) follow the state.

import { contentUrl } from "../api.js";
import { exact, humanSize, speed } from "../format.js";
import { focusRow } from "./vault.js";
import { h } from "./dom.js";

function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
           hint ? h("div", { class: "hint" }, hint) : null);
}

function errorLine() {
  const el = h("p", { class: "form-error", role: "alert", hidden: true });
  return {
    el,
    set(message) {
      el.hidden = !message;
      el.textContent = message ?? "";
    },
  };
}

function dropZone(text, multiple, onFiles) {
  const input = h("input", { type: "file", id: "file-input", multiple, class: "file-input",
                             onchange: () => onFiles([...input.files]) });
  const zone = h("label", { class: "dropzone", for: "file-input",
    ondragover: (event) => { event.preventDefault(); zone.classList.add("drop"); },
    ondragleave: () => zone.classList.remove("drop"),
    ondrop: (event) => {
      event.preventDefault();
      zone.classList.remove("drop");
      onFiles([...(event.dataTransfer?.files ?? [])]);
    } }, text);
  return h("div", {}, zone, input);
}

function progressBar() {
  const bar = h("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
  const label = h("span", { class: "progress-label" });
  const el = h("div", { class: "progress", hidden: true }, bar, label);
  return {
    el,
    set(p) {
      el.hidden = !p;
      if (!p) return;
      bar.value = p.total ? Math.round((100 * p.loaded) / p.total) : 0;
      label.textContent = `${humanSize(p.loaded)} of ${humanSize(p.total)} · ${speed(p.loaded, p.seconds)}`;
    },
  };
}

function confirmDialog(d, actions, { title, body, confirm, danger, needsText, textLabel }) {
  const error = errorLine();
  const text = needsText
    ? h("textarea", { id: "dialog-text", rows: 3, required: needsText === "required" })
    : null;
  const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirm);
  const form = h("form", { method: "dialog", onsubmit: (event) => {
      event.preventDefault();
      actions.submitDialog({ text: text?.value ?? "" });
    } },
    h("h2", { id: "dialog-title" }, title),
    body ? h("p", {}, body) : null,
    text ? field(textLabel, text) : null,
    error.el,
    h("div", { class: "buttons" },
      h("button", { type: "button", onclick: actions.closeDialog }, "Cancel"), submit));
  return {
    el: form,
    focus: text ?? submit,
    update(next) {
      error.set(next.error);
      submit.disabled = Boolean(next.busy);
    },
  };
}

function checkinDialog(d, actions) {
  const error = errorLine();
  const chosen = h("p", { class: "chosen" });
  const message = h("textarea", { id: "checkin-message", rows: 3, required: true,
                                  placeholder: "What changed?" });
  const keep = h("input", { type: "checkbox", id: "keep-locked" });
  const major = h("input", { type: "checkbox", id: "major" });
  const progress = progressBar();
  const submit = h("button", { type: "submit", class: "primary" }, "Check in");
  const cancel = h("button", { type: "button", onclick: actions.closeDialog }, "Cancel");
  const form = h("form", { onsubmit: (event) => {
      event.preventDefault();
      actions.submitDialog({ message: message.value, keepLocked: keep.checked, major: major.checked });
    } },
    h("h2", { id: "dialog-title" }, `Check in ${d.name}`),
    dropZone("Drop the new version here, or click to choose a file", false,
             (files) => actions.chooseFiles(files)),
    chosen,
    field("Message (required)", message),
    h("label", { class: "check" }, keep, " Keep it checked out"),
    h("label", { class: "check" }, major, " Major revision (next whole number)"),
    progress.el, error.el,
    h("div", { class: "buttons" }, cancel, submit));
  return {
    el: form,
    focus: message,
    update(next) {
      const file = next.files?.[0];
      chosen.textContent = file ? `${file.name} · ${humanSize(file.size)}` : "No file chosen yet.";
      progress.set(next.progress);
      error.set(next.error);
      submit.disabled = Boolean(next.busy) || !file;
      cancel.textContent = next.busy ? "Cancel upload" : "Cancel";
    },
  };
}

function newFileDialog(d, actions) {
  const error = errorLine();
  const items = h("ul", { class: "upload-items" });
  const description = h("input", { id: "new-description", placeholder: "e.g. Bracket, op 10" });
  const message = h("input", { id: "new-message", placeholder: "Optional" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload");
  const form = h("form", { onsubmit: (event) => {
      event.preventDefault();
      actions.submitDialog({ description: description.value, message: message.value });
    } },
    h("h2", { id: "dialog-title" }, "New files"),
    dropZone("Drop one or more files here, or click to choose", true, (files) => actions.chooseFiles(files)),
    items,
    field("Description", description),
    field("Message", message),
    error.el,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: actions.closeDialog }, "Close"), submit));
  return {
    el: form,
    focus: form.querySelector("label.dropzone"),
    update(next) {
      items.replaceChildren(...(next.items ?? []).map((item) =>
        h("li", { class: `upload-item ${item.status}` },
          h("span", { class: "filename" }, item.name),
          h("span", { class: "size" }, humanSize(item.size)),
          item.progress != null
            ? h("progress", { max: 100, value: Math.round(100 * item.progress) })
            : h("span", {}),
          h("span", { class: "status" }, item.message ?? item.status))));
      const ready = (next.items ?? []).some((i) => i.status === "ready");
      submit.disabled = Boolean(next.busy) || !ready;
      error.set(next.error);
    },
  };
}

function historyDialog(d, actions) {
  const body = h("div", { class: "history" }, h("p", {}, "Loading…"));
  const error = errorLine();
  const close = h("button", { type: "button", onclick: actions.closeDialog }, "Close");
  const el = h("div", {}, h("h2", { id: "dialog-title" }, `History of ${d.name}`), body, error.el,
               h("div", { class: "buttons" }, close));
  return {
    el,
    focus: close,
    update(next) {
      error.set(next.error);
      if (!next.versions) return;
      body.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Version", "Revision", "When", "Who", "Message", "Size", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, next.versions.map((v) => h("tr", {},
          h("td", {}, `v${v.version}`), h("td", {}, v.revision), h("td", {}, exact(v.created_at)),
          h("td", {}, v.author), h("td", { class: "message" }, v.message), h("td", {}, humanSize(v.size)),
          h("td", {}, h("div", { class: "row-actions" },
            h("a", { href: contentUrl(d.name, v.version), download: d.name, class: "button" }, "Download"),
            next.canRevert && v.version !== next.versions[0].version
              ? h("button", { type: "button", onclick: () => actions.revert(d.name, v.version) }, "Revert to this")
              : null)))))),
        next.canRevert ? null : h("p", { class: "hint" }, "To revert to an older version, check the file out first."));
    },
  };
}

function setPasswordDialog(d, actions) {
  const error = errorLine();
  const password = h("input", { id: "dialog-password", type: "password", autocomplete: "new-password",
                                required: true, maxlength: 1024 });
  const submit = h("button", { type: "submit", class: "primary" }, "Set password");
  const form = h("form", { onsubmit: (event) => {
      event.preventDefault();
      actions.submitDialog({ text: password.value });
    } },
    h("h2", { id: "dialog-title" }, `New password for ${d.name}`),
    h("p", {}, `${d.name} is signed out everywhere and signs in with this password from now on.`),
    field("New password", password, "At least 8 characters, not a common password."),
    error.el,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: actions.closeDialog }, "Cancel"), submit));
  return {
    el: form,
    focus: password,
    update(next) {
      error.set(next.error);
      submit.disabled = Boolean(next.busy);
    },
  };
}

function newLinkDialog(d, actions) {
  const error = errorLine();
  const name = h("input", { id: "link-name", required: true, maxlength: 255, autocomplete: "off",
                            placeholder: "1234567_ABC123.link", spellcheck: "false" });
  const target = h("input", { id: "link-target", required: true, maxlength: 255, autocomplete: "off",
                              list: "link-targets", spellcheck: "false", value: d.target ?? "" });
  const options = h("datalist", { id: "link-targets" }, (d.names ?? []).map((n) => h("option", { value: n })));
  const description = h("input", { id: "link-description", maxlength: 1000, autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create link");
  const form = h("form", { onsubmit: (event) => {
      event.preventDefault();
      actions.submitDialog({ name: name.value.trim(), target: target.value.trim(), description: description.value });
    } },
    h("h2", { id: "dialog-title" }, "New link"),
    h("p", {}, "A link stands for a master file under another part number: it shows the master's version ",
      "and who has it, downloads the master, and is never checked out itself."),
    field("Link name (ends in .link)", name),
    field("Master file", target), options,
    field("Description (optional)", description),
    error.el,
    h("div", { class: "buttons" },
      h("button", { type: "button", onclick: actions.closeDialog }, "Cancel"), submit));
  return {
    el: form,
    focus: name,
    update(next) {
      error.set(next.error);
      submit.disabled = Boolean(next.busy);
    },
  };
}

const BUILDERS = {
  checkout: (d, a) => confirmDialog(d, a, { title: `Check out ${d.name}`, confirm: "Check out",
    body: "You get the lock and the file downloads. Others see that you have it.",
    needsText: "optional", textLabel: "Reason (shown to others)" }),
  cancel: (d, a) => confirmDialog(d, a, { title: `Cancel checkout of ${d.name}?`, confirm: "Cancel checkout",
    body: "The lock is released and no new version is made. Your local changes are not uploaded." }),
  break: (d, a) => confirmDialog(d, a, { title: `Break ${d.holder}'s lock on ${d.name}`, confirm: "Break lock",
    danger: true, body: `${d.holder} will see your name and reason.`, needsText: "required",
    textLabel: "Reason (required)" }),
  ask: (d, a) => confirmDialog(d, a, { title: `Ask ${d.holder} to release ${d.name}`, confirm: "Send",
    body: `${d.holder} gets a notification now, and it is in the audit log.`, needsText: "optional",
    textLabel: `Message to ${d.holder}` }),
  delete: (d, a) => confirmDialog(d, a, { title: `Delete ${d.name}?`, confirm: "Delete", danger: true,
    body: "It leaves the list. Its history stays in the git repository." }),
  disableUser: (d, a) => confirmDialog(d, a, { title: `Disable ${d.name}?`, confirm: "Disable", danger: true,
    body: `${d.name} is signed out at once, on every device, and cannot sign in until enabled again. Their files and history stay.` }),
  setPassword: setPasswordDialog,
  checkin: checkinDialog,
  newFile: newFileDialog,
  newLink: newLinkDialog,
  history: historyDialog,
};

/** Focus a rebuilt table row's button for `action`, or its first control. */
function focusKeyed(key, action) {
  const row = document.querySelector(`[data-focus-row="${CSS.escape(key)}"]`);
  const target = (action && row?.querySelector(`[data-action="${CSS.escape(action)}"]`))
    ?? row?.querySelector("button") ?? row?.querySelector("select");
  target?.focus();
  return Boolean(target);
}

export function createDialogView(dialog, actions) {
  let current = null; // {id, part}
  let opener = null;
  let openerRow = null;
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape: close through the state like everything else
    actions.closeDialog();
  });
  return function render(state) {
    const d = state.ui.dialog;
    if (!d) {
      if (current) {
        current = null;
        dialog.close();
        const toasts = document.getElementById("toasts");
        if (toasts) document.body.append(toasts);
        dialog.replaceChildren();
        // The opener's row may have been rebuilt meanwhile (its lock changed): focus its twin.
        if (opener?.isConnected) opener.focus();
        else if (!(openerRow && (openerRow.focusRow
          ? focusKeyed(openerRow.focusRow, openerRow.action)
          : focusRow(openerRow.filename, openerRow.action)))) {
          document.getElementById("main")?.focus();
        }
      }
      return;
    }
    if (!current || current.id !== d.id) {
      if (!current) {
        opener = document.activeElement;
        const row = opener?.closest?.(".row");
        const other = opener?.closest?.("[data-focus-row]");
        openerRow = row ? { filename: row.dataset.filename, action: opener.dataset.action }
          : other ? { focusRow: other.dataset.focusRow, action: opener.dataset.action } : null;
      }
      const part = BUILDERS[d.kind](d, actions);
      const toasts = document.getElementById("toasts");
      dialog.replaceChildren(part.el);
      if (toasts) dialog.append(toasts); // keep the toasts visible above the backdrop
      dialog.setAttribute("aria-labelledby", "dialog-title");
      current = { id: d.id, part };
      if (!dialog.open) dialog.showModal();
      part.update(d);
      part.focus?.focus();
      return;
    }
    current.part.update(d);
  };
}

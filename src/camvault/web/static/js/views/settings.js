// Shop settings (admins only): one form over GET /api/admin/settings. "Check" asks the
// server for a dry run (which existing names a new pattern or extension list would refuse)
// before anything is saved; "Save" sends only what changed. Another admin's change arrives
// as CONFIG_CHANGED and the form reloads unless it has unsaved edits.

import { groupExample } from "../shop.js";
import { h, setChildren } from "./dom.js";

export function createSettingsView(root, actions) {
  const input = (id, props = {}) => h("input", { id, name: id, autocomplete: "off", ...props });
  const fields = {
    allowed_extensions: input("set-extensions", { "aria-describedby": "set-extensions-hint" }),
    name_pattern: input("set-pattern", { "aria-describedby": "set-pattern-hint", spellcheck: "false" }),
    // No min/max here: the server checks every value and its message names the field.
    max_upload_mb: input("set-max-upload", { type: "number", step: "any" }),
    stale_lock_hours: input("set-stale", { type: "number", step: "any" }),
    session_hours: input("set-session", { type: "number", step: "any" }),
    group_digits: input("set-group-digits", { type: "number", step: "1" }),
    group_keep: input("set-group-keep", { type: "number", step: "1" }),
    ws_allowed_origins: input("set-origins", { "aria-describedby": "set-origins-hint", spellcheck: "false" }),
  };
  const signatures = h("tbody", {});
  const example = h("p", { class: "hint", id: "set-group-example", "aria-live": "polite" });
  const error = h("p", { class: "notice error", role: "alert", id: "settings-error", hidden: true });
  const preview = h("div", { class: "notice", id: "settings-preview", role: "status", hidden: true });
  const checkButton = h("button", { type: "button", id: "check-settings",
    onclick: () => actions.previewSettings(values()) }, "Check against existing files");
  const saveButton = h("button", { type: "submit", class: "primary", id: "save-settings" }, "Save");
  const field = (key, label, hint, hintId) => h("div", { class: "field" },
    h("label", { for: fields[key].id }, label), fields[key],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null);
  const form = h("form", { class: "card settings", "aria-labelledby": "settings-title",
    oninput: () => { actions.editSettings(); example.textContent = exampleText(); },
    onsubmit: (event) => { event.preventDefault(); actions.saveSettings(values()); } },
    h("h2", { id: "settings-title" }, "Files and names"),
    field("allowed_extensions", "Allowed extensions", "Separated by spaces, e.g. .mcam .emcam .vnc .nc .link",
          "set-extensions-hint"),
    h("table", { class: "data signatures", id: "set-signatures" },
      h("caption", {}, "Content checks: the bytes a file of that type must start with (hex); empty switches the check off"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Extension"), h("th", { scope: "col" }, "Signature (hex)"))),
      signatures),
    field("name_pattern", "Name pattern (regular expression)",
          "Every new file name must match it in full; leave empty for none. Existing files stay.", "set-pattern-hint"),
    field("max_upload_mb", "Largest upload (MB)"),
    h("h2", {}, "Grouping"),
    h("div", { class: "form-row" }, field("group_digits", "Digits of a part number"),
      field("group_keep", "Digits that name the group")),
    example,
    h("h2", {}, "Locks and sessions"),
    h("div", { class: "form-row" }, field("stale_lock_hours", "A checkout is stale after (hours)"),
      field("session_hours", "Sign-ins last (hours)")),
    field("ws_allowed_origins", "Other origins allowed to use this server",
          "Only needed when the page is served under another address; separated by spaces.", "set-origins-hint"),
    error, preview,
    h("div", { class: "buttons" }, checkButton, saveButton));
  root.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1", class: "page-title" }, "Shop settings"),
      h("p", { class: "hint" }, "Changes apply at once on every open page; each one is in the audit log.")),
    form);

  let signatureInputs = new Map(); // extension -> input
  let shownData = null;

  function values() {
    const signaturesOut = {};
    for (const [ext, el] of signatureInputs) signaturesOut[ext] = el.value.trim() || null;
    return {
      allowed_extensions: fields.allowed_extensions.value,
      content_signatures: signaturesOut,
      name_pattern: fields.name_pattern.value,
      max_upload_mb: fields.max_upload_mb.value,
      stale_lock_hours: fields.stale_lock_hours.value,
      session_hours: fields.session_hours.value,
      group_digits: fields.group_digits.value,
      group_keep: fields.group_keep.value,
      ws_allowed_origins: fields.ws_allowed_origins.value,
    };
  }

  function exampleText() {
    return groupExample(Number(fields.group_digits.value), Number(fields.group_keep.value));
  }

  function fill(data) {
    fields.allowed_extensions.value = data.allowed_extensions.join(" ");
    fields.name_pattern.value = data.name_pattern ?? "";
    fields.max_upload_mb.value = String(data.max_upload_mb);
    fields.stale_lock_hours.value = String(data.stale_lock_hours);
    fields.session_hours.value = String(data.session_hours);
    fields.group_digits.value = String(data.group_rule.digits);
    fields.group_keep.value = String(data.group_rule.keep);
    fields.ws_allowed_origins.value = data.ws_allowed_origins.join(" ");
    const extensions = [...new Set([...data.allowed_extensions, ...Object.keys(data.content_signatures)])];
    signatureInputs = new Map(extensions.map((ext) => [ext, h("input", {
      "aria-label": `Signature of ${ext} files`, spellcheck: "false", autocomplete: "off",
      value: data.content_signatures[ext] ?? "", placeholder: "no check", dataset: { ext } })]));
    setChildren(signatures, [...signatureInputs].map(([ext, el]) =>
      h("tr", {}, h("th", { scope: "row" }, ext), h("td", {}, el))));
    example.textContent = exampleText();
  }

  return function render(state, prev) {
    const s = state.shopSettings;
    if (prev && prev.shopSettings === s) return;
    if (s.data && s.data !== shownData && !s.dirty) {
      shownData = s.data;
      fill(s.data);
    }
    for (const el of [...Object.values(fields), ...signatureInputs.values()]) el.disabled = !s.data || s.busy;
    saveButton.disabled = checkButton.disabled = !s.data || s.busy;
    error.hidden = !(s.error || s.loadError);
    error.textContent = s.error ?? s.loadError ?? "";
    preview.hidden = !s.preview;
    if (s.preview) {
      const { failing_names: failing, failing_count: count } = s.preview;
      const items = failing.map((f) => h("li", {}, h("span", { class: "filename" }, f.filename), ` — ${f.reason}`));
      setChildren(preview, (count
        ? [h("p", {}, `${count} existing ${count === 1 ? "file" : "files"} would not be accepted as new uploads `
             + "(they stay in the vault and keep working):"), h("ul", { class: "failing-names" }, items),
           count > failing.length ? h("p", { class: "hint" }, `…and ${count - failing.length} more.`) : null]
        : [h("p", {}, "Every existing file name passes these rules.")]).filter(Boolean));
    }
  };
}

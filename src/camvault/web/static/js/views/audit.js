// Audit (admins only): the event log with the API's filters, newest first, "Older" pages
// and a CSV download of exactly what the filters select. Events never change, so a row
// element is built once per seq and kept.

import { exact } from "../format.js";
import { AUDIT_TYPES, auditQuery } from "../pages.js";
import { h, setChildren } from "./dom.js";

// One event, in words (the filter's labels name groups of them).
const EVENT_LABELS = new Map([
  ["file.uploaded", "Upload"], ["file.checked_out", "Checkout"], ["file.checked_in", "Check-in"],
  ["file.checkout_cancelled", "Checkout cancelled"], ["file.lock_broken", "Lock broken"],
  ["file.reverted", "Revert"], ["file.deleted", "Deletion"], ["file.recovered", "Recovered from git"],
  ["user.logged_in", "Sign-in"], ["user.logged_out", "Sign-out"], ["user.created", "Account created"],
  ["user.updated", "Account changed"], ["user.password_changed", "Password changed"],
  ["notification", "Asked to release"], ["config.changed", "Settings changed"],
]);

function detailsText(details) {
  return Object.entries(details ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

export function createAuditView(root, actions) {
  const rowCache = new Map(); // seq -> tr
  const input = (id, label, props = {}) => {
    const el = h("input", { id, name: id.replace("audit-", ""), ...props });
    return { el, field: h("div", { class: "field" }, h("label", { for: id }, label), el) };
  };
  const user = input("audit-user", "User", { autocomplete: "off", maxlength: 64 });
  const file = input("audit-file", "File", { autocomplete: "off", maxlength: 255 });
  const since = input("audit-since", "From", { type: "datetime-local" });
  const until = input("audit-until", "Until", { type: "datetime-local" });
  const type = h("select", { id: "audit-type", name: "type" },
    AUDIT_TYPES.map(([value, label]) => h("option", { value }, label)));
  const read = () => ({ user: user.el.value, file: file.el.value, type: type.value,
                        since: since.el.value, until: until.el.value });
  const csv = h("a", { class: "button", id: "audit-csv", download: "" }, "Download CSV");
  const form = h("form", { class: "card filters", "aria-label": "Filter the audit log",
    onsubmit: (event) => {
      event.preventDefault();
      actions.loadAudit(read());
    } },
    h("div", { class: "form-row" },
      user.field, file.field,
      h("div", { class: "field" }, h("label", { for: "audit-type" }, "What"), type),
      since.field, until.field,
      h("button", { type: "submit", class: "primary", id: "audit-apply" }, "Apply"),
      h("button", { type: "button", id: "audit-clear", onclick: () => {
        form.reset();
        actions.loadAudit(read());
      } }, "Clear"),
      csv));

  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  const tbody = h("tbody", {});
  const table = h("table", { class: "data audit-table", id: "audit-table" },
    h("caption", { class: "visually-hidden" }, "Audit log, newest first"),
    h("thead", {}, h("tr", {}, ["When", "Who", "What", "File", "Version", "Message or reason", "Details"]
      .map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true });
  const status = h("p", { class: "hint", role: "status" });
  const older = h("button", { type: "button", id: "audit-older", onclick: actions.olderAudit }, "Older");
  root.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1", class: "page-title" }, "Audit log"),
      h("p", { class: "hint" }, "Every change, who made it and when. Times are shown in your time zone.")),
    form, error,
    h("div", { class: "card table-card" }, table, empty, h("div", { class: "table-foot" }, status, older)));

  let shownFilters = null;

  function buildRow(e) {
    return h("tr", { dataset: { seq: String(e.seq) } },
      h("td", { class: "when", title: `event ${e.seq}` }, exact(e.at)),
      h("td", {}, e.actor ?? "—"),
      h("td", { title: e.type }, EVENT_LABELS.get(e.type) ?? e.type),
      h("td", { class: "file" }, e.filename ?? ""),
      h("td", {}, e.version == null ? "" : `v${e.version}`),
      h("td", { class: "message" }, e.message),
      h("td", { class: "details" }, detailsText(e.details)));
  }

  return function render(state, prev) {
    const a = state.audit;
    if (prev && prev.audit === a) return;
    if (shownFilters !== a.applied) {
      // The form shows the filters in force (after a reload, back/forward, or Clear).
      shownFilters = a.applied;
      user.el.value = a.applied.user;
      file.el.value = a.applied.file;
      type.value = a.applied.type;
      since.el.value = a.applied.since;
      until.el.value = a.applied.until;
    }
    csv.href = `/api/audit?${auditQuery(a.applied, { format: "csv" })}`;
    error.hidden = !a.error;
    error.textContent = a.error ?? "";
    const events = a.events ?? [];
    setChildren(tbody, events.map((e) => {
      let el = rowCache.get(e.seq);
      if (!el) rowCache.set(e.seq, (el = buildRow(e)));
      return el;
    }));
    table.hidden = events.length === 0;
    empty.hidden = a.events === null || events.length !== 0;
    const filtered = Object.values(a.applied).some((v) => v);
    empty.replaceChildren(
      h("h2", {}, "No events"),
      h("p", {}, filtered
        ? "Nothing in the log matches these filters. Widen the time range or clear the filters."
        : "The log is empty: uploads, checkouts, check-ins and account changes appear here."));
    status.textContent = a.loading
      ? "Loading…"
      : events.length === 0 ? "" : `${events.length} ${events.length === 1 ? "event" : "events"} shown${a.nextBefore ? "; older ones follow" : ""}.`;
    older.hidden = !a.nextBefore;
    older.disabled = a.loading;
  };
}

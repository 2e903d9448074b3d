// Pure helpers of the admin and insight pages: audit queries, the account list, the
// dashboard's checkouts and when the dashboard must be fetched again. No DOM here: Node's
// test runner runs this module as it is (tests/js/pages.test.mjs).

export const EMPTY_AUDIT_FILTERS = Object.freeze({ user: "", file: "", type: "", since: "", until: "" });

/** Event types for the audit filter: a family ("file") or one exact type. */
export const AUDIT_TYPES = [
  ["", "Everything"],
  ["file", "All file events"],
  ["file.uploaded", "Uploads"],
  ["file.checked_out", "Checkouts"],
  ["file.checked_in", "Check-ins"],
  ["file.checkout_cancelled", "Cancelled checkouts"],
  ["file.lock_broken", "Broken locks"],
  ["file.reverted", "Reverts"],
  ["file.deleted", "Deletions"],
  ["user", "All account events"],
  ["user.logged_in", "Sign-ins"],
  ["user.created", "Accounts created"],
  ["user.updated", "Accounts changed"],
  ["notification", "Requests to release"],
  ["config", "Settings changes"],
];

/**
 * A datetime-local value ("2026-11-27T08:30", the viewer's local time) as ISO 8601 UTC;
 * "" stays "". `toDate` turns the local string into a Date (the browser's clock by default).
 */
export function localToIso(value, toDate = (v) => new Date(v)) {
  if (!value) return "";
  const date = toDate(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** The query string of /api/audit for these filters (empty ones left out). */
export function auditQuery(filters, { before = null, limit = null, format = null, toDate } = {}) {
  const params = new URLSearchParams();
  const text = (key) => (filters[key] ?? "").trim();
  if (text("user")) params.set("user", text("user"));
  if (text("file")) params.set("file", text("file"));
  if (text("type")) params.set("type", text("type"));
  for (const key of ["since", "until"]) {
    const iso = localToIso(filters[key], toDate);
    if (iso) params.set(key, iso);
  }
  if (limit) params.set("limit", String(limit));
  if (before) params.set("before", String(before));
  if (format) params.set("format", format);
  return params.toString();
}

/** The account list with one account added or replaced (by username), sorted by name. */
export function upsertAccount(list, account) {
  const others = (list ?? []).filter((a) => a.username !== account.username);
  return [...others, account].sort((a, b) => a.username.localeCompare(b.username));
}

/** Active accounts with the admin role. */
export function activeAdmins(list) {
  return (list ?? []).filter((a) => a.role === "admin" && !a.disabled).length;
}

/**
 * The files checked out now, longest held first:
 * [{filename, holder, since, message, ageMs, stale, mine}].
 */
export function activeCheckouts(files, username, staleMs, now) {
  const out = [];
  for (const record of files.values()) {
    if (!record.lock) continue;
    const ageMs = Math.max(0, now - Date.parse(record.lock.since));
    out.push({
      filename: record.filename, holder: record.lock.user, since: record.lock.since,
      message: record.lock.message ?? "", ageMs, stale: ageMs > staleMs,
      mine: record.lock.user === username,
    });
  }
  return out.sort((a, b) => b.ageMs - a.ageMs || a.filename.localeCompare(b.filename));
}

/**
 * Should the dashboard's aggregates be fetched again after this state change? Yes when the
 * dashboard is showing and the files changed (a frame or a fresh snapshot).
 */
export function dashboardStale(state, prev) {
  return state.ui.view === "dashboard" && state.filesRev !== prev.filesRev && state.seq !== null;
}

/** "light" or "dark": the theme the user chose, or the system's for "auto". */
export function effectiveTheme(theme, prefersDark) {
  if (theme === "light" || theme === "dark") return theme;
  return prefersDark ? "dark" : "light";
}

/** The chart's URL; the log position in it makes a changed chart a new image. */
export function chartUrl({ seq, timezone }, theme) {
  const params = new URLSearchParams({ tz: timezone, theme, v: String(seq) });
  return `/api/dashboard/checkins.svg?${params}`;
}

/** "alice 3, bob 1": the chart's numbers in words, for its alt text and the legend. */
export function checkinSummary(data) {
  if (!data?.checkins?.length) return "no check-ins";
  return data.checkins.map((u) => `${u.user} ${u.total}`).join(", ");
}

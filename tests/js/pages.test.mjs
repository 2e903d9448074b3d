// Tests of the pages' pure logic (routes, audit queries, accounts, dashboard), run for real
// by Node's test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  EMPTY_AUDIT_FILTERS,
  activeCheckouts,
  auditQuery,
  chartUrl,
  checkinSummary,
  dashboardStale,
  effectiveTheme,
  localToIso,
  upsertAccount,
} from "../../src/camvault/web/static/js/pages.js";
import { hashFor, pageFor, pagesFor, parseHash } from "../../src/camvault/web/static/js/routes.js";

const admin = { username: "root", role: "admin" };
const user = { username: "ann", role: "user" };

test("the hash names the page; anything unknown is the vault", () => {
  assert.equal(parseHash("#/audit"), "audit");
  assert.equal(parseHash("#/dashboard?x=1"), "dashboard");
  assert.equal(parseHash("#audit"), "audit");
  for (const hash of ["", "#", "#/", "#/nope", "#/constructor", "#/__proto__", undefined]) {
    assert.equal(parseHash(hash), "vault", String(hash));
  }
  assert.equal(hashFor("users"), "#/users");
  assert.equal(hashFor("vault"), "#/");
  assert.equal(hashFor("nonsense"), "#/");
});

test("a plain user is never routed to an admin page, nor offered one", () => {
  assert.equal(pageFor("#/audit", admin), "audit");
  assert.equal(pageFor("#/users", admin), "users");
  assert.equal(pageFor("#/audit", user), "vault");
  assert.equal(pageFor("#/users", user), "vault");
  assert.equal(pageFor("#/settings", user), "vault");
  assert.equal(pageFor("#/settings", admin), "settings");
  assert.equal(pageFor("#/dashboard", user), "dashboard");
  assert.equal(pageFor("#/account", user), "account");
  assert.deepEqual(pagesFor(user).map((p) => p.name), ["vault", "dashboard", "account"]);
  assert.deepEqual(pagesFor(admin).map((p) => p.name), ["vault", "dashboard", "audit", "users", "settings", "account"]);
  assert.deepEqual(pagesFor(null).map((p) => p.name), ["vault", "dashboard", "account"]);
});

test("audit filters become the API's query, empty ones left out, local times as UTC", () => {
  assert.equal(auditQuery(EMPTY_AUDIT_FILTERS), "");
  const toDate = (v) => new Date(`${v}:00Z`); // a viewer in UTC
  const query = auditQuery(
    { user: " ann ", file: "1234567_A1.mcam", type: "file", since: "2026-11-01T08:30", until: "" },
    { before: 42, limit: 100, format: "csv", toDate },
  );
  const params = new URLSearchParams(query);
  assert.deepEqual(Object.fromEntries(params), {
    user: "ann", file: "1234567_A1.mcam", type: "file", since: "2026-11-01T08:30:00.000Z",
    limit: "100", before: "42", format: "csv",
  });
  // Names with & or = stay one parameter.
  assert.equal(new URLSearchParams(auditQuery({ ...EMPTY_AUDIT_FILTERS, file: "a&b=c.nc" })).get("file"), "a&b=c.nc");
  assert.equal(localToIso("not a date"), "");
  assert.equal(localToIso(""), "");
});

test("an account answer replaces its row or adds one, sorted by name", () => {
  const list = [
    { username: "bob", role: "user", disabled: false },
    { username: "ann", role: "user", disabled: false },
  ].reduce(upsertAccount, []);
  assert.deepEqual(list.map((a) => a.username), ["ann", "bob"]);
  const next = upsertAccount(list, { username: "bob", role: "user", disabled: true });
  assert.deepEqual(next.map((a) => [a.username, a.disabled]), [["ann", false], ["bob", true]]);
  assert.equal(list[1].disabled, false); // the old list is not changed
  assert.deepEqual(upsertAccount(null, { username: "x" }).map((a) => a.username), ["x"]);
});

test("active checkouts: longest held first, stale past the limit, mine marked", () => {
  const hour = 3_600_000;
  const now = Date.parse("2026-11-27T12:00:00Z");
  const record = (filename, lock) => [filename, { filename, lock }];
  const files = new Map([
    record("a.nc", { user: "ann", since: "2026-11-27T11:00:00Z", message: "" }),
    record("b.nc", null),
    record("c.nc", { user: "bob", since: "2026-11-26T00:00:00Z", message: "feeds" }),
  ]);
  const rows = activeCheckouts(files, "ann", 24 * hour, now);
  assert.deepEqual(rows.map((r) => [r.filename, r.holder, r.ageMs / hour, r.stale, r.mine]), [
    ["c.nc", "bob", 36, true, false],
    ["a.nc", "ann", 1, false, true],
  ]);
  assert.equal(rows[0].message, "feeds");
});

test("the dashboard refetches only while it is showing and the files changed", () => {
  const base = { ui: { view: "dashboard" }, filesRev: 3, seq: 10 };
  assert.equal(dashboardStale({ ...base, filesRev: 4 }, base), true);
  assert.equal(dashboardStale(base, base), false);
  assert.equal(dashboardStale({ ...base, filesRev: 4, ui: { view: "vault" } }, base), false);
  assert.equal(dashboardStale({ ...base, filesRev: 4, seq: null }, base), false);
});

test("the chart follows the theme and the log position; its numbers in words", () => {
  assert.equal(effectiveTheme("dark", false), "dark");
  assert.equal(effectiveTheme("light", true), "light");
  assert.equal(effectiveTheme("auto", true), "dark");
  assert.equal(effectiveTheme("auto", false), "light");
  const url = new URL(chartUrl({ seq: 7, timezone: "Europe/Berlin" }, "dark"), "http://x");
  assert.equal(url.pathname, "/api/dashboard/checkins.svg");
  assert.deepEqual(Object.fromEntries(url.searchParams), { tz: "Europe/Berlin", theme: "dark", v: "7" });
  assert.equal(checkinSummary({ checkins: [{ user: "ann", total: 3 }, { user: "bob", total: 1 }] }), "ann 3, bob 1");
  assert.equal(checkinSummary({ checkins: [] }), "no check-ins");
});

// Dashboard (everyone): what is checked out now and for how long (from the live file list),
// check-ins per day per user (a chart pygal draws on the server, shown as an image), the
// most active files (GET /api/dashboard) and who is online (PRESENCE frames).

import { duration, exact, relative } from "../format.js";
import { activeCheckouts, chartUrl, checkinSummary, effectiveTheme } from "../pages.js";
import { h, setChildren } from "./dom.js";

const MINUTE = 60_000;
const prefersDark = () => globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;

function card(id, title, ...children) {
  return h("section", { class: "card dash-card", id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title), ...children);
}

export function createDashboardView(root, actions) {
  const checkoutCache = new Map(); // filename -> {key, el}
  const checkoutBody = h("tbody", {});
  const checkoutTable = h("table", { class: "data", id: "checkouts-table" },
    h("thead", {}, h("tr", {}, ["File", "Held by", "For", "Reason", ""].map((t) => h("th", { scope: "col" }, t)))),
    checkoutBody);
  const checkoutEmpty = h("p", { class: "empty-line" },
    "No file is checked out right now. Checkouts appear here with their holder and how long they have been held.");
  const checkoutCount = h("span", { class: "count" });

  const chart = h("img", { id: "checkins-chart", class: "chart", width: 900, height: 320, alt: "" });
  const chartLegend = h("p", { class: "hint", id: "checkins-totals" });
  const chartEmpty = h("p", { class: "empty-line", hidden: true },
    "No check-ins in the last 30 days. Each check-in adds a bar for its day, coloured by user.");
  const activeBody = h("tbody", {});
  const activeTable = h("table", { class: "data", id: "active-files" },
    h("thead", {}, h("tr", {}, ["File", "Events", "Check-ins", "Last activity"].map((t) => h("th", { scope: "col" }, t)))),
    activeBody);
  const activeEmpty = h("p", { class: "empty-line" }, "No file activity in the last 30 days.");
  const online = h("ul", { class: "online-list", id: "online-now" });
  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  const updated = h("p", { class: "hint", id: "dashboard-updated" });

  root.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1", class: "page-title" }, "Dashboard"), updated),
    error,
    h("div", { class: "dashboard" },
      card("checkouts", "Checked out now", checkoutCount, checkoutTable, checkoutEmpty),
      card("online", "Online now", online),
      card("checkins", "Check-ins per day, last 30 days", chart, chartEmpty, chartLegend),
      card("active", "Most active files, last 30 days", activeTable, activeEmpty)));

  function checkoutRow(c, ctx) {
    const key = [c.holder, c.since, c.message, c.stale, Math.floor(c.ageMs / MINUTE), ctx.isAdmin].join("|");
    const cached = checkoutCache.get(c.filename);
    if (cached && cached.key === key) return cached.el;
    const age = c.ageMs < MINUTE ? "<1 min" : duration(c.ageMs);
    const el = h("tr", { class: c.stale ? "stale" : null, dataset: { filename: c.filename, focusRow: `checkout:${c.filename}` } },
      h("th", { scope: "row", class: "file" }, c.filename),
      h("td", {}, c.mine ? `${c.holder} (you)` : c.holder),
      h("td", { title: `since ${exact(c.since)}` }, age,
        c.stale ? h("span", { class: "badge stale" }, "stale") : null),
      h("td", { class: "message" }, c.message),
      h("td", {}, ctx.isAdmin && !c.mine
        ? h("button", { type: "button", class: "danger", dataset: { action: "break" },
                        "aria-label": `Break ${c.holder}'s lock on ${c.filename}`,
                        disabled: !ctx.online, onclick: () => actions.rowAction("break", c.filename) }, "Break lock")
        : null));
    checkoutCache.set(c.filename, { key, el });
    return el;
  }

  let shownActive = null;

  return function render(state) {
    const ctx = {
      isAdmin: state.user?.role === "admin",
      online: state.connection.status !== "offline",
    };
    // CONFIG_CHANGED (live shop settings) wins over the config read at sign-in.
    const staleHours = state.settings?.stale_lock_hours ?? state.config?.stale_lock_hours ?? 24;
    const checkouts = activeCheckouts(state.files, state.user?.username, staleHours * 3_600_000, state.ui.now);
    checkoutCount.textContent = checkouts.length
      ? `${checkouts.length} ${checkouts.length === 1 ? "file" : "files"}; held over ${duration(staleHours * 3_600_000)} counts as stale`
      : "";
    setChildren(checkoutBody, checkouts.map((c) => checkoutRow(c, ctx)));
    checkoutTable.hidden = checkouts.length === 0;
    checkoutEmpty.hidden = checkouts.length !== 0 || state.seq === null;
    for (const name of checkoutCache.keys()) {
      if (!checkouts.some((c) => c.filename === name)) checkoutCache.delete(name);
    }

    setChildren(online, state.online.map((name) =>
      h("li", {}, h("span", { class: "dot", "aria-hidden": "true" }), name,
        name === state.user?.username ? " (you)" : "")));

    const d = state.dashboard;
    error.hidden = !d.error;
    error.textContent = d.error ?? "";
    const data = d.data;
    if (!data) {
      updated.textContent = d.error ? "" : "Loading…";
      chart.hidden = true;
      activeTable.hidden = true;
      return;
    }
    updated.textContent = `Activity as of ${relative(data.generated_at, state.ui.now)}; it follows changes live.`;
    const hasCheckins = data.checkins_total > 0;
    chart.hidden = !hasCheckins;
    chartEmpty.hidden = hasCheckins;
    if (hasCheckins) {
      const src = chartUrl(data, effectiveTheme(state.ui.theme, prefersDark()));
      if (chart.getAttribute("src") !== src) chart.setAttribute("src", src);
      const summary = checkinSummary(data);
      chart.setAttribute("alt", `Check-ins per day over the last 30 days, stacked by user. Totals: ${summary}.`);
      const n = data.checkins_total;
      chartLegend.textContent = `${n} ${n === 1 ? "check-in" : "check-ins"} in 30 days: ${summary}.`;
    } else {
      chartLegend.textContent = "";
    }
    activeTable.hidden = data.active_files.length === 0;
    activeEmpty.hidden = data.active_files.length !== 0;
    const activeKey = `${data.generated_at}|${Math.floor(state.ui.now / MINUTE)}`;
    if (activeKey !== shownActive) {
      shownActive = activeKey;
      setChildren(activeBody, data.active_files.map((f) => h("tr", { dataset: { filename: f.filename } },
        h("th", { scope: "row", class: "file" }, f.filename),
        h("td", { class: "num" }, String(f.events)),
        h("td", { class: "num" }, String(f.checkins)),
        h("td", { title: exact(f.last_at) }, relative(f.last_at, state.ui.now)))));
    }
  };
}

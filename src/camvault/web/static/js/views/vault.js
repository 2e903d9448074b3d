// The vault list: groups -> subgroups -> file rows. Only expanded groups render rows, and
// rows are kept by key (filename) and rebuilt only when what they show changed.

import { duration, exact, humanSize, relative } from "../format.js";
import { lockState, visibleTree } from "../model.js";
import { h, setChildren } from "./dom.js";

const MINUTE = 60_000;
const OPEN_BY_DEFAULT_MAX = 300;

/** Focus a row's button for `action`, or its first button (after the row was rebuilt). */
export function focusRow(filename, action) {
  const row = document.querySelector(`.row[data-filename="${CSS.escape(filename)}"]`);
  if (!row) return false;
  const target = (action && row.querySelector(`[data-action="${CSS.escape(action)}"]`))
    ?? row.querySelector("button");
  target?.focus();
  return Boolean(target);
}

/** Creates the vault view; call the returned function with each new state. */
export function createVaultView(root, actions) {
  const rowCache = new Map(); // filename -> {key, el}
  const groupCache = new Map(); // group -> {header, body, key}
  const subgroupCache = new Map(); // "group/subgroup" -> {key, el}
  let pendingFocus = null; // a focused row was rebuilt: focus its new twin after insertion
  let treeKey = null;
  let tree = [];

  const toolbar = h("div", { class: "toolbar" });
  const list = h("div", { class: "groups", role: "tree", "aria-label": "Files by part number" });
  const empty = h("div", { class: "empty", hidden: true });
  root.replaceChildren(toolbar, empty, list);

  const search = h("input", {
    type: "search", class: "search", placeholder: "Search name or description",
    "aria-label": "Search files",
    oninput: (event) => actions.search(event.target.value),
  });
  const filterButtons = [
    ["all", "All"], ["checked-out", "Checked out"], ["mine", "Mine"], ["free", "Free"],
  ].map(([value, label]) =>
    h("button", { type: "button", class: "chip", dataset: { filter: value },
                  onclick: () => actions.setFilter(value) }, label));
  const newButton = h("button", { type: "button", class: "primary", id: "new-file",
                                  onclick: () => actions.openNewFile() }, "New file");
  const linkButton = h("button", { type: "button", id: "new-link",
                                   onclick: () => actions.openNewLink() }, "New link");
  toolbar.append(search, h("div", { class: "chips", role: "group", "aria-label": "Filter" },
                           filterButtons), h("div", { class: "toolbar-end" }, linkButton, newButton));

  // A link shows its master's version and lock (the page holds the master's record too).
  function shown(record, ctx) {
    if (!record.link_target) return record;
    const master = ctx.files.get(record.link_target);
    return master
      ? { ...record, version: master.version, revision: master.revision, size: master.size, lock: master.lock }
      : { ...record, lock: null };
  }

  function rowKey(original, ctx) {
    const record = shown(original, ctx);
    const lock = lockState(record, ctx.username, ctx.staleMs, ctx.now);
    // The age label changes per minute; the rest only when the record does.
    const ageBucket = lock.kind === "free" ? 0 : Math.floor(lock.age / MINUTE);
    const modifiedBucket = Math.floor((ctx.now - Date.parse(record.modified_at)) / MINUTE);
    return [record.sha256, record.version, record.description, record.modified_at, record.link_target,
            record.lock?.user, record.lock?.since, lock.stale, ageBucket, modifiedBucket,
            ctx.online, ctx.isAdmin].join("|");
  }

  function lockBadge(record, ctx) {
    const lock = lockState(record, ctx.username, ctx.staleMs, ctx.now);
    if (lock.kind === "free") return h("span", { class: "badge free" }, "free");
    const since = exact(record.lock.since);
    const age = lock.age < MINUTE ? "<1 min" : duration(lock.age);
    const title = record.lock.message ? `${since} — “${record.lock.message}”` : since;
    const what = record.link_target ? "master checked out" : "checked out";
    if (lock.kind === "mine") {
      return h("span", { class: `badge mine${lock.stale ? " stale" : ""}`, title },
               `${what} by you for ${age}`);
    }
    return h("span", { class: `badge other${lock.stale ? " stale" : ""}`, title },
             `${what} by ${lock.user} for ${age}`);
  }

  function rowActions(record, ctx) {
    const lock = lockState(record, ctx.username, ctx.staleMs, ctx.now);
    const name = record.filename;
    const off = !ctx.online;
    const button = (label, action, extra = {}) =>
      h("button", { type: "button", class: "action", disabled: off && action !== "download",
                    "aria-label": `${label} ${name}`, dataset: { action },
                    onclick: () => actions.rowAction(action, name), ...extra }, label);
    const buttons = [];
    if (record.link_target) {
      // A link is not checked out or in: its master is. It downloads the master.
      const master = record.link_target;
      buttons.push(button("Download", "download"));
      buttons.push(h("button", { type: "button", class: "action", dataset: { action: "master" },
        "aria-label": `Show ${master}, the master of ${name}`, onclick: () => actions.search(master) }, "Show master"));
      if (ctx.isAdmin) buttons.push(button("Delete", "delete", { class: "action danger" }));
      return buttons;
    }
    if (lock.kind === "free") buttons.push(button("Check out", "checkout"));
    buttons.push(button("Download", "download"));
    if (lock.kind === "mine") {
      buttons.push(button("Check in", "checkin", { class: "action primary" }));
      buttons.push(button("Cancel checkout", "cancel"));
    }
    buttons.push(button("History", "history"));
    if (lock.kind === "other") buttons.push(button("Ask to release", "ask"));
    if (ctx.isAdmin && lock.kind === "other") buttons.push(button("Break lock", "break"));
    if (ctx.isAdmin && lock.kind === "free") buttons.push(button("Delete", "delete", { class: "action danger" }));
    return buttons;
  }

  function buildRow(original, ctx) {
    const record = shown(original, ctx);
    const lock = lockState(record, ctx.username, ctx.staleMs, ctx.now);
    const canDrop = lock.kind === "mine" && !record.link_target; // a check-in goes to the master
    const row = h("div", {
      class: `row${lock.stale ? " stale" : ""}${record.link_target ? " link" : ""}`, role: "treeitem",
      dataset: { filename: record.filename },
      ondragover: (event) => { if (canDrop) { event.preventDefault(); row.classList.add("drop"); } },
      ondragleave: () => row.classList.remove("drop"),
      ondrop: (event) => {
        row.classList.remove("drop");
        if (!canDrop) return;
        event.preventDefault();
        const file = event.dataTransfer?.files?.[0];
        if (file) actions.openCheckin(record.filename, file);
      },
    },
      h("div", { class: "name" },
        h("span", { class: "filename" }, record.filename),
        record.link_target
          ? h("span", { class: "link-target", title: `A link: it stands for ${record.link_target}` },
              h("span", { class: "tag" }, "link"), ` → ${record.link_target}`)
          : null,
        h("span", { class: "description" }, record.description)),
      h("div", { class: "version", title: `version ${record.version}, revision ${record.revision}` },
        `v${record.version}`, h("span", { class: "revision" }, `rev ${record.revision}`)),
      h("div", { class: "size" }, humanSize(record.size)),
      h("div", { class: "modified", title: exact(record.modified_at) },
        `${record.modified_by}, ${relative(record.modified_at, ctx.now)}`),
      h("div", { class: "lock" }, lockBadge(record, ctx)),
      h("div", { class: "actions" }, rowActions(record, ctx)));
    return row;
  }

  function row(record, ctx) {
    const key = rowKey(record, ctx);
    const cached = rowCache.get(record.filename);
    if (cached && cached.key === key) return cached.el;
    const el = buildRow(record, ctx);
    const focused = document.activeElement;
    if (cached && focused && cached.el.contains(focused)) {
      pendingFocus = { filename: record.filename, action: focused.dataset?.action };
    }
    rowCache.set(record.filename, { key, el });
    return el;
  }

  function subgroupHeader(group, sub) {
    const id = `${group}/${sub.subgroup}`;
    const key = String(sub.files.length);
    const cached = subgroupCache.get(id);
    if (cached && cached.key === key) return cached.el;
    const el = h("div", { class: "subgroup" }, sub.subgroup, h("span", { class: "count" }, ` · ${key}`));
    subgroupCache.set(id, { key, el });
    return el;
  }

  function groupNodes(group, ctx) {
    const expanded = ctx.expandedAll || (ctx.expanded[group.group] ?? ctx.openByDefault);
    let cached = groupCache.get(group.group);
    if (!cached) {
      const header = h("button", { type: "button", class: "group-header",
        onclick: () => actions.toggleGroup(group.group, header.getAttribute("aria-expanded") === "true") });
      const body = h("div", { class: "group-body", role: "group" });
      cached = { header, body, key: null, section: h("section", { class: "group" }, header, body) };
      groupCache.set(group.group, cached);
    }
    const headerKey = `${expanded}|${group.count}`;
    if (cached.key !== headerKey) {
      cached.header.replaceChildren(
        h("span", { class: "chevron", "aria-hidden": "true" }, expanded ? "▾" : "▸"),
        h("span", { class: "group-name", title: group.group === "Misc"
          ? "Files whose names do not start with a 7-digit part number"
          : `Part numbers starting with ${group.group.slice(0, 2)}` }, group.group),
        h("span", { class: "count" }, `${group.count} ${group.count === 1 ? "file" : "files"}`));
      cached.header.setAttribute("aria-expanded", String(expanded));
      cached.key = headerKey;
    }
    if (!expanded) {
      setChildren(cached.body, []);
      return cached.section;
    }
    const children = [];
    for (const sub of group.subgroups) {
      if (sub.subgroup) children.push(subgroupHeader(group.group, sub));
      for (const record of sub.files) children.push(row(record, ctx));
    }
    setChildren(cached.body, children);
    return cached.section;
  }

  return function render(state, prev) {
    const ui = state.ui;
    if (document.activeElement !== search && search.value !== ui.query) search.value = ui.query;
    for (const b of filterButtons) b.setAttribute("aria-pressed", String(b.dataset.filter === ui.filter));
    newButton.disabled = linkButton.disabled = state.connection.status === "offline";

    const ctx = {
      username: state.user?.username,
      isAdmin: state.user?.role === "admin",
      staleMs: (state.config?.stale_lock_hours ?? 24) * 3_600_000,
      now: ui.now,
      online: state.connection.status !== "offline",
      files: state.files,
      expanded: ui.expanded,
      expandedAll: ui.query.trim() !== "",
      // Small vaults open fully; big ones start folded so the page stays fast.
      openByDefault: state.files.size <= OPEN_BY_DEFAULT_MAX,
    };
    // Drop cached rows of files that are gone.
    if (prev && prev.filesRev !== state.filesRev && state.lastChange?.type === "removed") {
      for (const name of state.lastChange.filenames) rowCache.delete(name);
    }
    const key = `${state.filesRev}|${ui.query}|${ui.filter}|${ctx.username}`;
    if (key !== treeKey) {
      tree = visibleTree(state.files, ui.query, ui.filter, ctx.username);
      treeKey = key;
    }
    empty.hidden = tree.length !== 0 || state.seq === null;
    if (tree.length === 0) {
      empty.replaceChildren(...(state.files.size === 0
        ? [h("h2", {}, "The vault is empty"),
           h("p", {}, "Add your first Mastercam file with “New file”, or drop files onto this page. ",
             "Files named by part number, like 1234567_A1.mcam, are grouped as 12XXXXX → 1234567.")]
        : [h("h2", {}, "Nothing matches"),
           h("p", {}, "No file matches the search and filter. Clear the search or choose “All”.")]));
    }
    setChildren(list, tree.map((group) => groupNodes(group, ctx)));
    if (pendingFocus) {
      focusRow(pendingFocus.filename, pendingFocus.action);
      pendingFocus = null;
    }
  };
}

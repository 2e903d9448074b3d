// Derived data: grouping, search and filters over the files in the store.

export const FILTERS = ["all", "checked-out", "mine", "free"];

export function matches(record, query, filter, username) {
  if (filter === "checked-out" && !record.lock) return false;
  if (filter === "mine" && record.lock?.user !== username) return false;
  if (filter === "free" && record.lock) return false;
  if (!query) return true;
  return (
    record.filename.toLowerCase().includes(query) ||
    record.description.toLowerCase().includes(query)
  );
}

function compareGroups(a, b) {
  if (a === "Misc") return 1;
  if (b === "Misc") return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The visible tree: [{group, count, subgroups: [{subgroup, files: [record]}]}], sorted,
 * with only files that pass the search and filter.
 */
export function visibleTree(files, query, filter, username) {
  const q = query.trim().toLowerCase();
  const groups = new Map();
  for (const record of files.values()) {
    if (!matches(record, q, filter, username)) continue;
    let subgroups = groups.get(record.group);
    if (!subgroups) groups.set(record.group, (subgroups = new Map()));
    const key = record.subgroup ?? "";
    let list = subgroups.get(key);
    if (!list) subgroups.set(key, (list = []));
    list.push(record);
  }
  return [...groups.keys()].sort(compareGroups).map((group) => {
    const subgroups = [...groups.get(group).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([subgroup, list]) => ({
        subgroup: subgroup || null,
        files: list.sort((a, b) => a.filename.localeCompare(b.filename)),
      }));
    const count = subgroups.reduce((n, s) => n + s.files.length, 0);
    return { group, count, subgroups };
  });
}

export function lockState(record, username, staleMs, now) {
  if (!record.lock) return { kind: "free" };
  const age = now - Date.parse(record.lock.since);
  return {
    kind: record.lock.user === username ? "mine" : "other",
    user: record.lock.user,
    age,
    stale: age > staleMs,
  };
}

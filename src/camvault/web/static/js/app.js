// The page: one store, actions that call the API or setState, views rendered from state.
// Data flows one way: event (frame, API answer, click) -> store -> render.

import { ApiError, api, contentUrl, uploadForm } from "./api.js";
import { createLiveClient, initialLiveState } from "./live.js";
import { EMPTY_AUDIT_FILTERS, auditQuery, dashboardStale, upsertAccount } from "./pages.js";
import { hashFor, pageFor } from "./routes.js";
import { settingsPatch } from "./shop.js";
import { createStore } from "./store.js";
import { createAccountView } from "./views/account.js";
import { createAuditView } from "./views/audit.js";
import { renderBanner, renderHeader, renderLogin, renderToasts } from "./views/chrome.js";
import { createDashboardView } from "./views/dashboard.js";
import { createDialogView } from "./views/dialogs.js";
import { createSettingsView } from "./views/settings.js";
import { createUsersView } from "./views/users.js";
import { createVaultView } from "./views/vault.js";

const PAGE_VIEWS = {
  vault: createVaultView,
  dashboard: createDashboardView,
  audit: createAuditView,
  users: createUsersView,
  settings: createSettingsView,
  account: createAccountView,
};
const AUDIT_PAGE = 100;
const DASHBOARD_DEBOUNCE_MS = 700;
const timeZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const saved = (key, fallback) => {
  try {
    return JSON.parse(localStorage.getItem(`camvault.${key}`)) ?? fallback;
  } catch {
    return fallback;
  }
};
const save = (key, value) => localStorage.setItem(`camvault.${key}`, JSON.stringify(value));

function freshState(extra = {}) {
  return {
    ...initialLiveState(),
    connection: { status: "idle", attempt: 0, nextAttemptAt: null },
    user: null,
    config: null,
    ui: {
      view: "loading", query: "", filter: "all", expanded: saved("expanded", {}),
      theme: saved("theme", "auto"), dialog: null, toasts: [], now: Date.now(),
      busy: false, loginMessage: null,
    },
    accounts: { list: null, loadError: null, error: null, formError: null, busy: false, created: 0 },
    audit: { applied: EMPTY_AUDIT_FILTERS, events: null, nextBefore: null, loading: false, error: null },
    dashboard: { data: null, error: null },
    account: { busy: false, message: null },
    shopSettings: { data: null, loadError: null, error: null, busy: false, dirty: false, preview: null },
    ...extra,
  };
}

const store = createStore(freshState());
window.camvault = { store }; // for tests and the curious: read-only use, please
let live = null;
let upload = null; // the running upload's abort handle
let nextId = 1;

const setUi = (patch) => store.setState((s) => ({ ...s, ui: { ...s.ui, ...(typeof patch === "function" ? patch(s.ui) : patch) } }));
const setSlice = (key, patch) => store.setState((s) => ({ ...s, [key]: { ...s[key], ...patch } }));
const setDialog = (patch) => setUi((ui) => (ui.dialog ? { dialog: { ...ui.dialog, ...patch } } : {}));

function toast(kind, message, { title = null, sticky = false } = {}) {
  const id = nextId++;
  setUi((ui) => ({ toasts: [...ui.toasts, { id, kind, message, title }].slice(-5) }));
  if (!sticky) setTimeout(() => actions.dismissToast(id), kind === "error" ? 10000 : 5000);
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) return sessionEnded();
  toast("error", error.message ?? String(error));
}

function sessionEnded() {
  live?.stop();
  live = null;
  store.setState(freshState({
    ui: { ...freshState().ui, view: "login", loginMessage: { kind: "warning", text: "Your session has ended. Please sign in again." } },
  }));
}

function download(name, version) {
  const a = document.createElement("a");
  a.href = contentUrl(name, version);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

async function startSession(user) {
  const config = await api.config();
  store.setState((s) => ({ ...s, user, config, ui: { ...s.ui, loginMessage: null, busy: false } }));
  live = createLiveClient(store);
  route();
}

// --- pages: the hash names the page; hashchange (links, back/forward, reload) routes ------

function route() {
  const state = store.getState();
  if (!state.user) return;
  const page = pageFor(location.hash, state.user);
  if (location.hash && hashFor(page) !== location.hash.split("?")[0]) {
    history.replaceState(null, "", hashFor(page)); // e.g. a non-admin at #/audit
  }
  if (page === state.ui.view) return;
  setUi({ view: page });
  if (page === "users") actions.loadAccounts();
  if (page === "audit") actions.loadAudit(store.getState().audit.applied);
  if (page === "dashboard") loadDashboard();
  if (page === "account") setSlice("account", { message: null });
  if (page === "settings") actions.loadShopSettings();
}

async function sendSettings(values, dryRun) {
  const s = store.getState().shopSettings;
  if (!s.data) return;
  const patch = settingsPatch(values, s.data);
  if (!Object.keys(patch).length) {
    setSlice("shopSettings", { error: null, preview: null, dirty: false });
    return toast("info", "Nothing changed: the settings are as shown.");
  }
  setSlice("shopSettings", { busy: true, error: null });
  try {
    const answer = await api.saveShopSettings(patch, dryRun);
    if (dryRun) {
      setSlice("shopSettings", { busy: false, preview: answer.effects });
    } else {
      setSlice("shopSettings", { busy: false, data: answer.settings, dirty: false, preview: answer.effects });
      toast("success", "Settings saved. Every open page uses them now.");
    }
  } catch (error) {
    if (error.status === 401) return sessionEnded();
    setSlice("shopSettings", { busy: false, error: error.message });
  }
}

let dashboardLoading = false;
let dashboardAgain = false;
let dashboardTimer = null;

async function loadDashboard() {
  if (dashboardLoading) {
    dashboardAgain = true; // one more fetch after this one, for the change it may have missed
    return;
  }
  dashboardLoading = true;
  try {
    const data = await api.dashboard(timeZone());
    setSlice("dashboard", { data, error: null });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return sessionEnded();
    setSlice("dashboard", { error: `The activity numbers could not be loaded: ${error.message}` });
  } finally {
    dashboardLoading = false;
    if (dashboardAgain && store.getState().ui.view === "dashboard") {
      dashboardAgain = false;
      loadDashboard();
    }
  }
}

async function accountChange(name, patch, success) {
  setSlice("accounts", { error: null });
  const account = await api.updateAccount(name, patch);
  store.setState((s) => ({ ...s, accounts: { ...s.accounts, list: upsertAccount(s.accounts.list, account) } }));
  toast("success", success);
  return account;
}

async function runUpload(path, fields, file, onProgress) {
  const started = performance.now();
  upload = uploadForm(path, fields, file, (loaded, total) =>
    onProgress({ loaded, total, seconds: (performance.now() - started) / 1000 }));
  try {
    return await upload.promise;
  } finally {
    upload = null;
  }
}

async function checkNames(items) {
  try {
    const { results } = await api.checkNames(items.map((i) => i.name));
    const byName = new Map(results.map((r) => [r.name, r]));
    setDialog({ items: items.map((i) => {
      const r = byName.get(i.name);
      return r.ok ? { ...i, status: "ready", message: "ready" } : { ...i, status: "invalid", message: r.message };
    }) });
  } catch (error) {
    setDialog({ error: error.message });
  }
}

const SUBMIT = {
  async checkout(d, { text }) {
    const record = await api.checkout(d.name, text);
    setUi({ dialog: null });
    toast("success", `You have ${record.filename} checked out. It is downloading.`);
    download(d.name);
  },
  async cancel(d) {
    await api.cancel(d.name);
    setUi({ dialog: null });
    toast("success", `Checkout of ${d.name} cancelled.`);
  },
  async break(d, { text }) {
    if (!text.trim()) return setDialog({ error: "Give a reason: the holder will see it." });
    await api.breakLock(d.name, text.trim());
    setUi({ dialog: null });
    toast("success", `${d.holder}'s lock on ${d.name} was broken.`);
  },
  async ask(d, { text }) {
    const { holder } = await api.requestUnlock(d.name, text.trim());
    setUi({ dialog: null });
    toast("success", `${holder} was asked to release ${d.name}.`);
  },
  async delete(d) {
    await api.remove(d.name);
    setUi({ dialog: null });
    toast("success", `${d.name} was deleted.`);
  },
  async disableUser(d) {
    setDialog({ busy: true, error: null });
    await accountChange(d.name, { disabled: true }, `${d.name} is disabled and was signed out.`);
    setUi({ dialog: null });
  },
  async setPassword(d, { text }) {
    if (!text) return setDialog({ error: "Type the new password." });
    setDialog({ busy: true, error: null });
    await accountChange(d.name, { password: text }, `${d.name} has a new password and was signed out.`);
    setUi({ dialog: null });
  },
  async checkin(d, { message, keepLocked, major }) {
    const file = d.files?.[0];
    if (!file) return setDialog({ error: "Choose the new version's file first." });
    if (!message.trim()) return setDialog({ error: "Write a message saying what changed." });
    setDialog({ busy: true, error: null });
    const record = await runUpload(`/api/files/${encodeURIComponent(d.name)}/checkin`,
      { message, keep_locked: String(keepLocked), major: String(major) }, file,
      (progress) => setDialog({ progress }));
    setUi({ dialog: null });
    toast("success", `${record.filename} checked in as v${record.version} (rev ${record.revision}).`);
  },
  async newLink(d, { name, target, description }) {
    if (!name || !target) return setDialog({ error: "Give the link a name and choose its master file." });
    setDialog({ busy: true, error: null });
    const record = await api.createLink(name, target, description);
    setUi({ dialog: null });
    toast("success", `${record.filename} now stands for ${record.link_target}.`);
  },
  async newFile(d, { description, message }) {
    setDialog({ busy: true, error: null });
    for (const item of d.items.filter((i) => i.status === "ready")) {
      const mark = (patch) => setDialog({ items: store.getState().ui.dialog.items.map((i) => (i.name === item.name ? { ...i, ...patch } : i)) });
      mark({ status: "uploading", message: "uploading…", progress: 0 });
      try {
        await runUpload("/api/files", { description, message }, item.file,
          ({ loaded, total }) => mark({ progress: total ? loaded / total : 0 }));
        mark({ status: "done", message: "uploaded", progress: 1 });
      } catch (error) {
        if (error.status === 401) throw error;
        mark({ status: "failed", message: error.message, progress: null });
        if (error.code === "aborted") break;
      }
    }
    setDialog({ busy: false });
    const done = store.getState().ui.dialog?.items.filter((i) => i.status === "done").length ?? 0;
    if (done) toast("success", `${done} ${done === 1 ? "file" : "files"} added.`);
  },
};

let searchTimer = null;

const actions = {
  async login(username, password) {
    setUi({ busy: true, loginMessage: null });
    try {
      const { user } = await api.login(username, password);
      await startSession(user);
    } catch (error) {
      setUi({ busy: false, loginMessage: { kind: "error", text: error.message } });
    }
  },
  async logout() {
    live?.stop();
    live = null;
    try {
      await api.logout();
    } catch {
      // Already logged out on the server: the page returns to the login either way.
    }
    store.setState(freshState({ ui: { ...freshState().ui, view: "login" } }));
  },
  search(value) {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => setUi({ query: value }), 150);
  },
  setFilter: (filter) => setUi({ filter }),
  toggleGroup(group, isOpen) {
    setUi((ui) => {
      const expanded = { ...ui.expanded, [group]: !isOpen };
      save("expanded", expanded);
      return { expanded };
    });
  },
  cycleTheme() {
    const order = ["auto", "dark", "light"];
    const theme = order[(order.indexOf(store.getState().ui.theme) + 1) % order.length];
    save("theme", theme);
    setUi({ theme });
  },
  retryNow: () => live?.retryNow(),
  dismissToast: (id) => setUi((ui) => ({ toasts: ui.toasts.filter((t) => t.id !== id) })),
  openNewLink() {
    const names = [...store.getState().files.values()]
      .filter((f) => !f.link_target).map((f) => f.filename).sort();
    setUi({ dialog: { id: nextId++, kind: "newLink", names } });
  },
  openNewFile(files = []) {
    setUi({ dialog: { id: nextId++, kind: "newFile", items: [] } });
    if (files.length) actions.chooseFiles(files);
  },
  openCheckin(name, file) {
    setUi({ dialog: { id: nextId++, kind: "checkin", name, files: file ? [file] : [] } });
  },
  rowAction(action, name) {
    const record = store.getState().files.get(name);
    const open = (kind, extra = {}) => setUi({ dialog: { id: nextId++, kind, name, ...extra } });
    if (action === "download") return download(name);
    if (action === "checkin") return actions.openCheckin(name);
    if (action === "break" || action === "ask") return open(action, { holder: record?.lock?.user });
    if (action === "history") {
      open("history", { versions: null, canRevert: record?.lock?.user === store.getState().user.username });
      return api.versions(name).then((versions) => setDialog({ versions })).catch(failed);
    }
    return open(action);
  },
  chooseFiles(files) {
    const d = store.getState().ui.dialog;
    if (!d) return;
    if (d.kind === "checkin") return setDialog({ files: files.slice(0, 1), error: null });
    const items = files.map((file) => ({ name: file.name, size: file.size, file, status: "checking", message: "checking name…" }));
    setDialog({ items, error: null });
    checkNames(items);
  },
  async submitDialog(values) {
    const d = store.getState().ui.dialog;
    if (!d || d.busy) return;
    try {
      await SUBMIT[d.kind](d, values);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return sessionEnded();
      setDialog({ busy: false, progress: null, error: error.message });
    }
  },
  async revert(name, version) {
    try {
      const record = await api.revert(name, version, `Revert to version ${version}`);
      toast("success", `${name} is now v${record.version}, with the content of v${version}.`);
      setDialog({ versions: await api.versions(name) });
    } catch (error) {
      failed(error);
    }
  },
  closeDialog() {
    upload?.abort();
    setUi({ dialog: null });
  },

  // --- users (admin) ---
  async loadAccounts() {
    try {
      const list = await api.accounts();
      setSlice("accounts", { list: list.reduce(upsertAccount, []), loadError: null });
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("accounts", { loadError: error.message });
    }
  },
  async createAccount(username, role, password) {
    setSlice("accounts", { busy: true, formError: null, error: null });
    try {
      const account = await api.createAccount(username, role, password);
      store.setState((s) => ({ ...s, accounts: { ...s.accounts, busy: false, created: s.accounts.created + 1,
                                                  list: upsertAccount(s.accounts.list, account) } }));
      toast("success", `Account ${account.username} created.`);
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("accounts", { busy: false, formError: error.message });
    }
  },
  async setRole(name, role) {
    try {
      await accountChange(name, { role }, `${name} is now ${role === "admin" ? "an admin" : "a user"}.`);
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      // A new list object re-renders the rows: the select shows the role still in force.
      store.setState((s) => ({ ...s, accounts: { ...s.accounts, list: [...(s.accounts.list ?? [])],
                                                  error: `${name} was not changed: ${error.message}` } }));
    }
  },
  async enableAccount(name) {
    try {
      await accountChange(name, { disabled: false }, `${name} can sign in again.`);
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("accounts", { error: `${name} was not changed: ${error.message}` });
    }
  },
  openAccountDialog(kind, name) {
    setSlice("accounts", { error: null });
    setUi({ dialog: { id: nextId++, kind, name } });
  },

  // --- audit (admin) ---
  async loadAudit(filters, before = null) {
    setSlice("audit", { applied: filters, loading: true, error: null, ...(before ? {} : { events: null, nextBefore: null }) });
    try {
      const page = await api.audit(auditQuery(filters, { before, limit: AUDIT_PAGE }));
      if (store.getState().audit.applied !== filters) return; // newer filters were applied meanwhile
      store.setState((s) => ({ ...s, audit: { ...s.audit, loading: false, nextBefore: page.next_before,
        events: before ? [...(s.audit.events ?? []), ...page.events] : page.events } }));
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("audit", { loading: false, error: error.message });
    }
  },
  olderAudit() {
    const a = store.getState().audit;
    if (a.nextBefore && !a.loading) actions.loadAudit(a.applied, a.nextBefore);
  },

  // --- shop settings (admins) ---
  async loadShopSettings() {
    try {
      const { settings } = await api.shopSettings();
      setSlice("shopSettings", { data: settings, loadError: null, dirty: false });
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("shopSettings", { loadError: `The settings could not be loaded: ${error.message}` });
    }
  },
  editSettings() {
    const s = store.getState().shopSettings;
    if (!s.dirty || s.preview) setSlice("shopSettings", { dirty: true, preview: null });
  },
  async previewSettings(values) {
    await sendSettings(values, true);
  },
  async saveSettings(values) {
    await sendSettings(values, false);
  },

  // --- account (everyone) ---
  async changePassword(current, next, again) {
    if (next !== again) {
      return setSlice("account", { message: { kind: "error", text: "The two new passwords differ. Type the same one twice." } });
    }
    setSlice("account", { busy: true, message: null });
    try {
      await api.changePassword(current, next);
      setSlice("account", { busy: false, message: { kind: "success", text: "Your password was changed. Your other sessions were signed out." } });
    } catch (error) {
      if (error.status === 401) return sessionEnded();
      setSlice("account", { busy: false, message: { kind: "error", text: error.message } });
    }
  },
};

// --- rendering: at most once per frame, always from the newest state ----------------------

const banner = document.getElementById("banner");
const header = document.getElementById("header");
const main = document.getElementById("main");
const toasts = document.getElementById("toasts");
const dialogEl = document.getElementById("dialog");
const renderDialog = createDialogView(dialogEl, actions);
let page = null; // {name, render}: the page view now in <main>
let rendered = null;
let scheduled = false;

function render() {
  scheduled = false;
  const state = store.getState();
  const prev = rendered;
  rendered = state;
  document.documentElement.dataset.theme = state.ui.theme;
  renderHeader(header, state, actions);
  renderBanner(banner, state, actions);
  renderToasts(toasts, state, actions);
  if (state.ui.view === "login") {
    if (prev?.ui.view !== "login" || prev.ui.loginMessage !== state.ui.loginMessage || prev.ui.busy !== state.ui.busy) {
      page = null;
      renderLogin(main, state, actions);
    }
  } else if (PAGE_VIEWS[state.ui.view]) {
    const fresh = page?.name !== state.ui.view;
    if (fresh) page = { name: state.ui.view, render: PAGE_VIEWS[state.ui.view](main, actions) };
    page.render(state, fresh ? null : prev);
    // A page opened by navigation takes the focus to its title (where a reader starts).
    if (fresh && prev && PAGE_VIEWS[prev.ui.view]) main.querySelector(".page-title")?.focus();
  }
  renderDialog(state);
  // A modal dialog makes the rest of the page inert and covers it: toasts go inside it.
  const host = state.ui.dialog ? dialogEl : document.body;
  if (toasts.parentElement !== host) host.append(toasts);
  main.setAttribute("aria-busy", String(state.ui.view === "loading"));
}

store.subscribe((state, prev) => {
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(render);
  }
  // Effects of state changes: notifications become toasts; a lost connection checks the session.
  // By identity, not by count: the list is capped, so its length stops growing.
  const known = new Set(prev.notifications.map((n) => `${n.type}:${n.seq}`));
  const fresh = state.notifications === prev.notifications
    ? []
    : state.notifications.filter((n) => !known.has(`${n.type}:${n.seq}`));
  for (const note of fresh) {
    queueMicrotask(() => note.type === "LOCK_BROKEN"
      ? toast("warning", `${note.by} broke your lock on ${note.filename}: “${note.reason}”`, { title: "Your checkout was ended", sticky: true })
      : note.kind === "unlock_request"
        ? toast("info", `${note.from} asks you to release ${note.filename}${note.message ? `: “${note.message}”` : "."}`,
          { title: "Someone needs your file", sticky: true })
        : toast("info", note.message, { sticky: true }));
  }
  if (state.filesRev !== prev.filesRev && state.lastChange?.type === "snapshot" && prev.seq !== null) {
    // A resync by snapshot may have skipped a CONFIG_CHANGED: ask for the settings again.
    api.config().then((config) => store.setState((s) => ({ ...s, config }))).catch(() => {});
  }
  if (state.settings !== prev.settings && state.ui.view === "settings" && !state.shopSettings.dirty
      && !state.shopSettings.busy) {
    actions.loadShopSettings();
  }
  if (dashboardStale(state, prev)) {
    // Checkouts on the dashboard follow the store at once; the counts are fetched again,
    // once for a burst of changes.
    clearTimeout(dashboardTimer);
    dashboardTimer = setTimeout(loadDashboard, DASHBOARD_DEBOUNCE_MS);
  }
  if (state.connection.status === "reconnecting" && prev.connection.status !== "reconnecting" && live) {
    // The session may have ended, or its role changed (the server closes an account's
    // sockets when its role changes): the header and the pages follow the answer.
    api.me()
      .then((user) => {
        const now = store.getState();
        if (now.user && user.role !== now.user.role) {
          store.setState((s) => ({ ...s, user }));
          route();
        }
      })
      .catch((error) => { if (error.status === 401) sessionEnded(); });
  }
});

setInterval(() => setUi({ now: Date.now() }), 1000);
window.addEventListener("hashchange", route);

// Files dropped anywhere but a row start a new upload; the browser never navigates to them.
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  const files = [...(event.dataTransfer?.files ?? [])];
  if (files.length && store.getState().ui.view === "vault" && !store.getState().ui.dialog) actions.openNewFile(files);
});

api.me()
  .then((user) => startSession(user))
  .catch((error) => {
    setUi({ view: "login", loginMessage: error.status === 401 ? null : { kind: "error", text: error.message } });
  });

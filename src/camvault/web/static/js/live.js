// The live client: one WebSocket to /ws, frames routed into the store, reconnect with
// full-jitter exponential backoff, resume by seq, resync on a gap. See docs/protocol.md.
// Everything outside the browser (WebSocket, timers, randomness, window events) is passed
// in, so the same module runs under Node's test runner.

export const BASE_DELAY_MS = 1000;
export const MAX_DELAY_MS = 30000;
export const STABLE_AFTER_MS = 10000;
export const PING_EVERY_MS = 25000;
export const PONG_TIMEOUT_MS = 10000;
export const RESYNC_TIMEOUT_MS = 5000;
// The server refuses a socket beyond ws_max_per_user with this code. Retrying on our own
// would only be refused again (for ever, every 30 s, from every extra tab): the banner
// asks the user to close a tab and retry instead.
export const CLOSE_TOO_MANY = 4429;

/** Full jitter: a uniform delay in [0, min(30 s, 1 s * 2^attempt)). */
export function backoffDelay(attempt, random = Math.random) {
  const cap = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** The live part of the store's state, before the first frame. */
export function initialLiveState() {
  return {
    connection: { status: "connecting", attempt: 0, nextAttemptAt: null },
    seq: null,
    epoch: null,
    files: new Map(), // filename -> file record, as GET /api/files gives them
    filesRev: 0, // bumped on every change to files, with the changed names in lastChange
    lastChange: null,
    online: [],
    settings: null,
    notifications: [],
    activity: [],
    stats: { frames: 0, badFrames: 0, unknownFrames: 0, gaps: 0, errors: 0 },
  };
}

function bump(state, key) {
  return { ...state.stats, [key]: state.stats[key] + 1 };
}

const MAX_KEPT = 50;

/**
 * Apply one parsed frame to the state (the frame's seq has already been checked).
 * Returns the next state; unknown types only count.
 */
export function applyFrame(state, frame) {
  const stats = bump(state, "frames");
  const seq = typeof frame.seq === "number" ? frame.seq : state.seq;
  const payload = frame.payload ?? {};
  switch (frame.type) {
    case "FILE_LIST_UPDATED": {
      const files = new Map();
      for (const records of Object.values(payload)) {
        for (const record of records) files.set(record.filename, record);
      }
      return {
        ...state, stats, seq, epoch: frame.epoch ?? state.epoch, files,
        filesRev: state.filesRev + 1, lastChange: { type: "snapshot", filenames: null },
      };
    }
    case "FILE_UPDATED": {
      state.files.set(payload.file.filename, payload.file);
      return {
        ...state, stats, seq, filesRev: state.filesRev + 1,
        lastChange: { type: "updated", filenames: [payload.file.filename] },
      };
    }
    case "FILE_REMOVED": {
      state.files.delete(payload.filename);
      return {
        ...state, stats, seq, filesRev: state.filesRev + 1,
        lastChange: { type: "removed", filenames: [payload.filename] },
      };
    }
    case "USER_LOGGED_IN":
    case "USER_LOGGED_OUT": {
      const item = { type: frame.type, username: payload.username, seq };
      return { ...state, stats, seq, activity: [item, ...state.activity].slice(0, MAX_KEPT) };
    }
    case "PRESENCE":
      return { ...state, stats, online: payload.online ?? [] };
    case "CONFIG_CHANGED":
      // The page adapts at once: config is what GET /api/config gave, now newer.
      return { ...state, stats, seq, settings: payload.settings,
               config: { ...(state.config ?? {}), ...payload.settings } };
    case "LOCK_BROKEN":
    case "NOTIFICATION": {
      if (state.notifications.some((n) => n.type === frame.type && n.seq === frame.seq)) {
        return { ...state, stats }; // replayed after a reconnect: already shown
      }
      const note = { type: frame.type, seq: frame.seq, ...payload };
      return { ...state, stats, notifications: [...state.notifications, note].slice(-MAX_KEPT) };
    }
    case "PONG":
      return { ...state, stats };
    case "ERROR":
      return { ...state, stats: { ...stats, errors: stats.errors + 1 } };
    default: {
      // Unknown to this client version: ignored, but a broadcast one still moves the seq.
      const next = "prev" in frame ? seq : state.seq;
      return { ...state, seq: next, stats: { ...stats, unknownFrames: stats.unknownFrames + 1 } };
    }
  }
}

/** Build the /ws URL for this page: wss: under https:, ws: otherwise. */
export function liveUrl(location, seq, epoch) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams();
  if (seq !== null && seq !== undefined) params.set("after", String(seq));
  if (epoch) params.set("epoch", epoch);
  const query = params.toString();
  return `${scheme}//${location.host}/ws${query ? `?${query}` : ""}`;
}

/**
 * Connect the store to the server. `env` supplies WebSocket, setTimeout, clearTimeout,
 * now, random, location, isOnline and addWindowListener (all default to the browser's).
 */
export function createLiveClient(store, env = {}) {
  const WS = env.WebSocket ?? globalThis.WebSocket;
  const setTimer = env.setTimeout ?? globalThis.setTimeout.bind(globalThis);
  const clearTimer = env.clearTimeout ?? globalThis.clearTimeout.bind(globalThis);
  const now = env.now ?? (() => Date.now());
  const random = env.random ?? Math.random;
  const location = env.location ?? globalThis.location;
  const isOnline = env.isOnline ?? (() => globalThis.navigator?.onLine ?? true);
  const listen = env.addWindowListener ?? ((name, fn) => globalThis.addEventListener(name, fn));

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let stableTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let resyncTimer = null;
  let resyncing = false;
  let stopped = false;

  const setConnection = (connection) =>
    store.setState((s) => ({ ...s, connection: { ...s.connection, ...connection } }));

  function clearTimers() {
    for (const t of [retryTimer, stableTimer, pingTimer, pongTimer, resyncTimer]) {
      if (t !== null) clearTimer(t);
    }
    retryTimer = stableTimer = pingTimer = pongTimer = resyncTimer = null;
  }

  function connect() {
    if (stopped) return;
    clearTimers();
    const { seq, epoch } = store.getState();
    setConnection({ status: attempt === 0 && seq === null ? "connecting" : "reconnecting",
                    nextAttemptAt: null, attempt });
    resyncing = false;
    const ws = new WS(liveUrl(location, seq, epoch));
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      setConnection({ status: "live", nextAttemptAt: null });
      stableTimer = setTimer(() => {
        attempt = 0;
        setConnection({ attempt: 0 });
      }, STABLE_AFTER_MS);
      schedulePing();
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event?.code === CLOSE_TOO_MANY) {
        clearTimers();
        setConnection({ status: "limited", nextAttemptAt: null });
        return;
      }
      scheduleReconnect();
    };
    ws.onerror = () => {}; // onclose follows and decides
  }

  function scheduleReconnect() {
    clearTimers();
    if (stopped) return;
    if (!isOnline()) {
      setConnection({ status: "offline", nextAttemptAt: null });
      return;
    }
    const delay = backoffDelay(attempt, random);
    attempt += 1;
    setConnection({ status: "reconnecting", nextAttemptAt: now() + delay, attempt });
    retryTimer = setTimer(connect, delay);
  }

  function schedulePing() {
    pingTimer = setTimer(() => {
      send({ type: "PING" });
      // No frame at all within the timeout: the peer is gone even if TCP hasn't noticed.
      pongTimer = setTimer(() => socket?.close(), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  function send(message) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(message));
  }

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      store.setState((s) => ({ ...s, stats: bump(s, "badFrames") }));
      return;
    }
    if (frame === null || typeof frame !== "object" || typeof frame.type !== "string") {
      store.setState((s) => ({ ...s, stats: bump(s, "badFrames") }));
      return;
    }
    // Any frame proves the connection alive.
    if (pongTimer !== null) { clearTimer(pongTimer); pongTimer = null; }
    if (pingTimer !== null) { clearTimer(pingTimer); }
    schedulePing();

    const last = store.getState().seq;
    if (frame.type !== "FILE_LIST_UPDATED" && typeof frame.seq === "number" && last !== null) {
      if (frame.seq <= last && "prev" in frame) return; // already seen (replay overlap)
      if (typeof frame.prev === "number" && frame.prev > last) {
        // A broadcast frame between `last` and this one never arrived: resync.
        if (!resyncing) requestResync(last);
        return;
      }
    }
    if (frame.type === "FILE_LIST_UPDATED" || "prev" in frame) resyncing = false;
    store.setState((s) => applyFrame(s, frame));
  }

  function requestResync(after) {
    resyncing = true;
    store.setState((s) => ({ ...s, stats: bump(s, "gaps") }));
    send({ type: "RESUME", after });
    resyncTimer = setTimer(() => {
      if (resyncing) socket?.close(); // no replay came: reconnect, which resumes too
    }, RESYNC_TIMEOUT_MS);
  }

  listen("online", () => {
    if (socket === null && !stopped) {
      attempt = 0;
      connect();
    }
  });
  listen("offline", () => {
    setConnection({ status: "offline", nextAttemptAt: null });
    if (socket) {
      const ws = socket;
      socket = null;
      clearTimers();
      ws.close();
    }
  });

  connect();

  return {
    /** Retry at once (the banner's "retry now"). */
    retryNow() {
      if (socket === null && !stopped) connect();
    },
    /** Close for good (logout). */
    stop() {
      stopped = true;
      clearTimers();
      const ws = socket;
      socket = null;
      ws?.close();
    },
    send,
  };
}

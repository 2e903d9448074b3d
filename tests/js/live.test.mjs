// Tests of the browser live client, run for real by Node's test runner (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BASE_DELAY_MS,
  CLOSE_TOO_MANY,
  MAX_DELAY_MS,
  STABLE_AFTER_MS,
  applyFrame,
  backoffDelay,
  createLiveClient,
  initialLiveState,
  liveUrl,
} from "../../src/camvault/web/static/js/live.js";
import { createStore } from "../../src/camvault/web/static/js/store.js";

// --- a fake world: sockets, timers and window events under the test's control ---------

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  open() { this.readyState = 1; this.onopen?.(); }
  receive(data) { this.onmessage?.({ data: typeof data === "string" ? data : JSON.stringify(data) }); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { if (this.readyState === 3) return; this.readyState = 3; this.onclose?.({ code: 1006 }); }
}

function world({ random = () => 0.5, online = true } = {}) {
  FakeSocket.all = [];
  let clock = 0;
  let nextId = 1;
  const timers = new Map();
  const listeners = {};
  const env = {
    WebSocket: FakeSocket,
    now: () => clock,
    random,
    location: { protocol: "http:", host: "shop:8000" },
    isOnline: () => online,
    setTimeout: (fn, ms) => { const id = nextId++; timers.set(id, { at: clock + ms, fn }); return id; },
    clearTimeout: (id) => timers.delete(id),
    addWindowListener: (name, fn) => { listeners[name] = fn; },
  };
  const advance = (ms) => {
    const until = clock + ms;
    for (;;) {
      const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      timers.delete(due[0]);
      clock = due[1].at;
      due[1].fn();
    }
    clock = until;
  };
  const store = createStore(initialLiveState());
  return {
    env, store, advance, listeners, timers,
    setOnline(v) { online = v; },
    get socket() { return FakeSocket.all.at(-1); },
  };
}

const record = (filename, version = 1, lock = null) => ({
  filename, group: "12XXXXX", subgroup: "1234567", size: 1, sha256: "0".repeat(64),
  version, revision: "1.0", description: "", modified_at: "2026-01-01T00:00:00.000Z",
  modified_by: "a", lock,
});
const snapshot = (seq, files) => ({
  type: "FILE_LIST_UPDATED", seq, epoch: "e1", payload: { "12XXXXX": files },
});
const updated = (seq, prev, file) => ({ type: "FILE_UPDATED", seq, prev, payload: { file } });

// --- backoff ------------------------------------------------------------------------------

test("backoff is full jitter under min(30 s, 1 s * 2^attempt)", () => {
  assert.equal(backoffDelay(0, () => 0), 0);
  assert.equal(backoffDelay(0, () => 0.999), Math.floor(0.999 * BASE_DELAY_MS));
  assert.equal(backoffDelay(3, () => 0.5), 4000);
  assert.equal(backoffDelay(5, () => 0.999), Math.floor(0.999 * MAX_DELAY_MS));
  assert.equal(backoffDelay(500, () => 0.5), MAX_DELAY_MS / 2);
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= 0 && d < Math.min(MAX_DELAY_MS, 1000 * 2 ** attempt));
    }
  }
});

test("the URL follows the page's scheme and carries the resume point", () => {
  assert.equal(liveUrl({ protocol: "https:", host: "h" }, null, null), "wss://h/ws");
  assert.equal(liveUrl({ protocol: "http:", host: "h:1" }, 41, "e"), "ws://h:1/ws?after=41&epoch=e");
});

// --- routing ------------------------------------------------------------------------------

test("frames are routed into the store by type and unknown types only count", () => {
  let s = initialLiveState();
  s = applyFrame(s, snapshot(5, [record("1234567_A1.mcam")]));
  assert.equal(s.seq, 5);
  assert.equal(s.files.size, 1);
  s = applyFrame(s, updated(6, 5, record("1234567_A1.mcam", 2)));
  assert.equal(s.files.get("1234567_A1.mcam").version, 2);
  assert.deepEqual(s.lastChange, { type: "updated", filenames: ["1234567_A1.mcam"] });
  s = applyFrame(s, { type: "FILE_REMOVED", seq: 7, prev: 6, payload: { filename: "1234567_A1.mcam" } });
  assert.equal(s.files.size, 0);
  s = applyFrame(s, { type: "PRESENCE", payload: { online: ["a", "b"] } });
  assert.deepEqual(s.online, ["a", "b"]);
  s = applyFrame(s, { type: "LOCK_BROKEN", seq: 8, payload: { filename: "x", by: "boss", reason: "r" } });
  s = applyFrame(s, { type: "LOCK_BROKEN", seq: 8, payload: { filename: "x", by: "boss", reason: "r" } });
  assert.equal(s.notifications.length, 1);
  s = applyFrame(s, { type: "SOMETHING_NEW", seq: 9, prev: 7, payload: {} });
  assert.equal(s.stats.unknownFrames, 1);
  assert.equal(s.seq, 9);
});

// --- the client against a fake server -----------------------------------------------------

test("bad frames are counted and the connection survives", () => {
  const w = world();
  createLiveClient(w.store, w.env);
  w.socket.open();
  w.socket.receive("{not json");
  w.socket.receive("42");
  w.socket.receive(snapshot(3, [record("1234567_A1.mcam")]));
  const s = w.store.getState();
  assert.equal(s.stats.badFrames, 2);
  assert.equal(s.connection.status, "live");
  assert.equal(s.files.size, 1);
  assert.equal(FakeSocket.all.length, 1);
});

test("a seq gap asks the server to resume from the last seq seen", () => {
  const w = world();
  createLiveClient(w.store, w.env);
  w.socket.open();
  w.socket.receive(snapshot(10, [record("1234567_A1.mcam")]));
  w.socket.receive(updated(11, 10, record("1234567_A1.mcam", 2)));
  w.socket.receive(updated(14, 13, record("1234567_A1.mcam", 4))); // 12..13 lost
  assert.deepEqual(w.socket.sent.at(-1), { type: "RESUME", after: 11 });
  assert.equal(w.store.getState().files.get("1234567_A1.mcam").version, 2);
  // The replay fills the hole in order; the repeated frame is ignored.
  w.socket.receive(updated(13, 11, record("1234567_A1.mcam", 3)));
  w.socket.receive(updated(14, 13, record("1234567_A1.mcam", 4)));
  w.socket.receive(updated(14, 13, record("1234567_A1.mcam", 4)));
  const s = w.store.getState();
  assert.equal(s.seq, 14);
  assert.equal(s.files.get("1234567_A1.mcam").version, 4);
  assert.equal(s.stats.gaps, 1);
});

test("a prev at or below the last seq is not a gap (filtered events)", () => {
  const w = world();
  createLiveClient(w.store, w.env);
  w.socket.open();
  w.socket.receive(snapshot(20, []));
  w.socket.receive(updated(25, 18, record("1234567_A1.mcam")));
  assert.equal(w.store.getState().stats.gaps, 0);
  assert.equal(w.store.getState().seq, 25);
});

test("reconnects with full-jitter backoff, never gives up, and resumes after the last seq", () => {
  const draws = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
  const w = world({ random: () => draws.shift() ?? 0.5 });
  createLiveClient(w.store, w.env);
  w.socket.open();
  w.socket.receive(snapshot(7, []));
  const delays = [];
  for (let i = 0; i < 7; i++) {
    const before = FakeSocket.all.length;
    w.socket.close();
    const state = w.store.getState().connection;
    assert.equal(state.status, "reconnecting");
    delays.push(state.nextAttemptAt - w.env.now());
    w.advance(state.nextAttemptAt - w.env.now());
    assert.equal(FakeSocket.all.length, before + 1);
    assert.equal(w.socket.url, "ws://shop:8000/ws?after=7&epoch=e1");
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000]);
});

test("the attempt counter resets after a stable connection", () => {
  const w = world({ random: () => 0.999 });
  createLiveClient(w.store, w.env);
  for (let i = 0; i < 4; i++) {
    w.socket.close();
    w.advance(w.store.getState().connection.nextAttemptAt - w.env.now());
  }
  assert.equal(w.store.getState().connection.attempt, 4);
  w.socket.open();
  w.advance(STABLE_AFTER_MS);
  assert.equal(w.store.getState().connection.attempt, 0);
  w.socket.close();
  assert.ok(w.store.getState().connection.nextAttemptAt - w.env.now() < 1000);
});

test("offline marks the state offline and online retries at once", () => {
  const w = world();
  createLiveClient(w.store, w.env);
  w.socket.open();
  w.setOnline(false);
  w.listeners.offline();
  assert.equal(w.store.getState().connection.status, "offline");
  const before = FakeSocket.all.length;
  w.advance(60_000);
  assert.equal(FakeSocket.all.length, before); // no retries while offline
  w.setOnline(true);
  w.listeners.online();
  assert.equal(FakeSocket.all.length, before + 1);
  w.socket.open();
  assert.equal(w.store.getState().connection.status, "live");
});

test("retryNow connects at once while waiting for the next attempt", () => {
  const w = world({ random: () => 0.9 });
  const client = createLiveClient(w.store, w.env);
  w.socket.close();
  const before = FakeSocket.all.length;
  client.retryNow();
  assert.equal(FakeSocket.all.length, before + 1);
});

test("a silent connection is closed after an unanswered PING and reconnects", () => {
  const w = world();
  createLiveClient(w.store, w.env);
  w.socket.open();
  const first = w.socket;
  w.advance(25_000);
  assert.deepEqual(first.sent.at(-1), { type: "PING" });
  w.advance(10_000);
  assert.equal(first.readyState, 3);
  assert.equal(w.store.getState().connection.status, "reconnecting");
});

test("a socket refused as one too many (4429) is not retried until the user asks", () => {
  const w = world();
  const client = createLiveClient(w.store, w.env);
  w.socket.open();
  w.socket.receive(snapshot(3, []));
  const before = FakeSocket.all.length;
  w.socket.readyState = 3;
  w.socket.onclose({ code: CLOSE_TOO_MANY });
  assert.equal(w.store.getState().connection.status, "limited");
  w.advance(10 * 60_000);
  assert.equal(FakeSocket.all.length, before); // no reconnect loop
  client.retryNow();
  assert.equal(FakeSocket.all.length, before + 1);
  assert.equal(w.socket.url, "ws://shop:8000/ws?after=3&epoch=e1");
  w.socket.open();
  assert.equal(w.store.getState().connection.status, "live");
});

"""Server restart with 1,000 live clients: how long until all of them are live again.

1,000 clients (bench/_ws.py, 2 worker processes) reconnect like the browser
(web/static/js/live.js): before attempt n (from 0) they wait random(0, min(30, 1 * 2**n)) s
(full jitter), the counter resets after 10 s of stable connection, and they resume with
/ws?after=<last seq>&epoch=<epoch>. They are connected for > 10 s, then the server gets
SIGTERM (clients should see close code 1001) and, once it exited, is started again on the
same port and data dir. While the clients come back, 3 changes (checkout / cancel) are made
one second apart, so late clients replay them. "Live" = the first frame on a new connection
(the replay, or a snapshot, is then followed by PRESENCE).

Goal: all 1,000 live again <= 35 s after SIGTERM. Also reported: the close codes seen, a
histogram of reconnect times (1 s buckets: the spread comes from the jitter), connection
attempts per client, replay vs snapshot, and whether any client missed a change (a frame
whose prev is newer than the client's last seq) or ended on a different seq.

    .venv/bin/python bench/ws_restart.py [--quick] [--profile]

--profile records the new server with py-spy while the clients come back
(bench/results/raw/ws_restart-storm.pyspy.txt).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import Counter
from typing import Any

import _measure as m
import _server as b
import _ws

CLIENTS = 1000
PROCESSES = 2
GOAL_S = 35.0
FILE = "1234567_A1.mcam"
CHANGES_AFTER_RESTART = 3
DEADLINE_S = 100.0


def analyse(events: list[list[tuple[float, str]]], t_term: float) -> dict[str, Any]:
    """Per client: its reconnect time since SIGTERM, attempts, close codes, replay or not."""
    reconnect_s: list[float] = []
    open_to_live_s: list[float] = []
    close_to_live_s: list[float] = []
    attempts: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    resumed: Counter[str] = Counter()
    replayed_frames: Counter[int] = Counter()
    never = 0
    for client in events:
        after = [(t, kind) for t, kind in client if t >= t_term]
        live_i = next((i for i, (_t, k) in enumerate(after) if k.startswith("live")), None)
        if live_i is None:
            never += 1
            continue
        t_live, kind = after[live_i]
        opened = [t for t, k in after[:live_i] if k == "open"]
        if opened:
            open_to_live_s.append(t_live - opened[-1])
        before = [(t, k) for t, k in after[:live_i] if k != "open"]
        reconnect_s.append(t_live - t_term)
        first_close = next((t for t, k in before if k.startswith("close")), None)
        if first_close is not None:
            close_to_live_s.append(t_live - first_close)
        for _t, k in before:
            if k.startswith("close"):
                codes[k.split()[1]] += 1
            else:
                outcomes[k] += 1
        # failed tries + (closed) connections before the one that went live, + that one
        tries = sum(1 for _t, k in before if not k.startswith("close")) + sum(
            1 for _t, k in before[1:] if k.startswith("close")
        )
        attempts[tries + 1] += 1
        resumed[kind.split()[1]] += 1
        frames = next(
            (int(k.split()[1]) for _t, k in after[live_i:] if k.startswith("resumed")), None
        )
        if frames is not None and kind == "live replay":
            replayed_frames[frames] += 1
    return {
        "reconnect_s": reconnect_s,
        "open_to_live_s": open_to_live_s,
        "close_to_live_s": close_to_live_s,
        "attempts": attempts,
        "failures": outcomes,
        "codes": codes,
        "resumed": resumed,
        "replayed_frames": replayed_frames,
        "never": never,
    }


def main() -> int:
    clients = 300 if "--quick" in sys.argv[1:] else CLIENTS
    nofile = _ws.raise_nofile()
    m.step(f"RLIMIT_NOFILE {nofile}")
    servers: list[b.Server] = []
    spy_wanted = m.wants_profile() and m.PySpy.available()
    spy: m.PySpy | None = None
    with b.temp_data_dir("wsrestart") as data:
        try:
            port = b.free_port()
            servers.append(_ws.start_server(data, port))
            base_url = servers[0].base_url
            token = b.login(base_url)
            _ws.add_files(base_url, token, [FILE])
            m.wait_for_quiet()
            m.step(f"connecting {clients} clients (port {port})")
            with _ws.Fleets(
                base_url,
                token,
                clients,
                PROCESSES,
                reconnect=True,
                track_events=True,
                record_arrivals=True,
                concurrency=64,
            ) as fleets:
                ready = _ws.merge(fleets.wait_ready())
                if ready["ready"] != clients:
                    raise RuntimeError(f"only {ready['ready']} of {clients} connected")
                connected_at = time.monotonic()
                changer = _ws.Changer(base_url, token, FILE)
                change_t0 = [changer.change()[0]]  # one live change before the restart
                changer.close()  # the next request reconnects (to the new server)
                stable = connected_at + _ws.STABLE_AFTER + 0.5 - time.monotonic()
                m.step(f"all connected; {stable:.1f} s more so every connection is 'stable'")
                time.sleep(max(0.0, stable))

                m.step("SIGTERM")
                t_term = time.monotonic()
                old = servers[0]
                old.proc.send_signal(signal.SIGTERM)
                old.proc.wait(timeout=60)
                t_exit = time.monotonic()
                servers.append(_ws.start_server(data, port))
                t_up = time.monotonic()
                m.step(
                    f"old server exited after {t_exit - t_term:.2f} s (code "
                    f"{old.proc.returncode}); new one healthy {t_up - t_exit:.2f} s later"
                )
                change_times = [t_up + 0.5 + i for i in range(CHANGES_AFTER_RESTART)]
                change_ms: list[float] = []
                t_all = None
                progress: list[tuple[float, int]] = []
                with contextlib.ExitStack() as stack:
                    if spy_wanted:
                        spy = stack.enter_context(m.PySpy(servers[-1].pid, "ws_restart-storm"))
                    while time.monotonic() - t_term < DEADLINE_S:
                        if change_times and time.monotonic() >= change_times[0]:
                            change_times.pop(0)
                            t0, response_s = changer.change()
                            change_t0.append(t0)
                            change_ms.append(response_s * 1000)
                        live = sum(fleets.ask("live_since", t_term))
                        progress.append((time.monotonic() - t_term, live))
                        if live >= clients and not change_times:
                            t_all = time.monotonic()
                            break
                        time.sleep(0.1)
                changer.close()
                m.step(f"{progress[-1][1]} of {clients} live again after {progress[-1][0]:.1f} s")
                time.sleep(1.5)  # the last changes reach everyone
                end_state = _ws.merge(fleets.ask("summary", {}))
                finals = fleets.stop(events=True, arrivals=True)
        finally:
            for server in servers:
                _ws.stop_server(server)

    events = [client for final in finals for client in final.get("events", [])]
    arrivals: dict[int, list[float]] = {}
    for final in finals:
        for seq, times in final.get("arrivals", {}).items():
            arrivals.setdefault(seq, []).extend(times)
    # the changes' seqs are the newest FILE_UPDATED seqs, in order
    seqs = sorted(arrivals)[-len(change_t0) :]
    delivery = [
        (len(arrivals[seq]), (max(arrivals[seq]) - t0) * 1000, m.pct(arrivals[seq], 50) - t0)
        for seq, t0 in zip(seqs, change_t0, strict=False)
    ]
    a = analyse(events, t_term)
    recon = a["reconnect_s"]
    all_s = (t_all - t_term) if t_all is not None else float("nan")
    last_seqs = end_state.get("last_seqs", Counter())
    live_at_end = end_state.get("live", 0)
    rows = [
        m.goal_le(
            f"all {clients:,} live again after SIGTERM",
            all_s if t_all is not None else (max(recon) if recon else float("inf")),
            GOAL_S,
            "s",
            "" if t_all is not None else f"NOT all: {a['never']} never came back",
        ),
        m.info(
            "reconnect time p50 (since SIGTERM)",
            m.pct(recon, 50),
            "s",
            f"p90 {m.pct(recon, 90):.1f}, p99 {m.pct(recon, 99):.1f}, max {max(recon):.1f} s",
        ),
        m.info(
            "close -> live p50 (per client)",
            m.pct(a["close_to_live_s"], 50),
            "s",
            f"max {max(a['close_to_live_s'], default=float('nan')):.1f} s",
        ),
        m.info(
            "handshake (101) -> first frame p50",
            m.pct(a["open_to_live_s"], 50) * 1000,
            "ms",
            f"p90 {m.pct(a['open_to_live_s'], 90) * 1000:.0f}, max "
            f"{max(a['open_to_live_s'], default=float('nan')) * 1000:.0f} ms: waiting in "
            "Hub.attach (replay/snapshot under the hub lock)",
        ),
        m.info("old server: SIGTERM -> exited", t_exit - t_term, "s", "closes all with 1001"),
        m.info(
            "new server: exited -> healthy",
            t_up - t_exit,
            "s",
            f"serving again {t_up - t_term:.1f} s after SIGTERM",
        ),
        m.info(
            "close codes seen after SIGTERM",
            sum(a["codes"].values()),
            "closes",
            ", ".join(f"{code}: {n}" for code, n in sorted(a["codes"].items())),
        ),
        m.info(
            "failed connection attempts",
            sum(a["failures"].values()),
            "",
            ", ".join(f"{k}: {n}" for k, n in a["failures"].most_common()) or "none",
        ),
        m.info(
            "attempts per client until live (mean)",
            sum(k * n for k, n in a["attempts"].items()) / max(1, sum(a["attempts"].values())),
            "",
            "distribution " + ", ".join(f"{k}: {n}" for k, n in sorted(a["attempts"].items())),
        ),
        m.info(
            "resumed with a replay",
            a["resumed"].get("replay", 0),
            "clients",
            f"snapshot: {a['resumed'].get('snapshot', 0)}; replayed frames: "
            + ", ".join(f"{k}: {n}" for k, n in sorted(a["replayed_frames"].items())),
        ),
        m.info(
            "missed changes (prev > last seq)",
            end_state.get("gaps", 0),
            "",
            f"repeats ignored: {end_state.get('repeats', 0)}; final seq of clients: "
            + ", ".join(f"{k}: {n}" for k, n in sorted(last_seqs.items(), key=str)),
        ),
        m.info(
            "HTTP change response during the storm",
            max(change_ms, default=float("nan")),
            "ms",
            "max of " + ", ".join(f"{x:.0f}" for x in change_ms) + " ms",
        ),
        m.info(
            "change -> last live client, before restart",
            delivery[0][1] if delivery else float("nan"),
            "ms",
            f"{delivery[0][0]} clients live" if delivery else "",
        ),
        m.info(
            "change -> last live client, during storm",
            max((d[1] for d in delivery[1:]), default=float("nan")),
            "ms",
            "per change (clients live then: last / median ms): "
            + ", ".join(f"{n}: {last:.0f} / {med * 1000:.0f}" for n, last, med in delivery[1:]),
        ),
        m.info("live at the end", live_at_end, "clients", f"of {clients:,}"),
    ]
    m.print_table(f"WebSocket restart with {clients:,} clients (full-jitter reconnect)", rows)
    print(f"\nreconnect time since SIGTERM, {len(recon)} clients (1 s buckets):")
    print("\n".join(_ws.histogram(recon)))
    if spy is not None:
        spy.print_summary()
    print(f"\nserver back at {t_up - t_term:.1f} s; backoff caps by attempt: 1, 2, 4, 8, 16, 30 s")
    extra = {
        "clients": clients,
        "all_live_s": None if t_all is None else round(all_s, 3),
        "reconnect_s": [round(x, 3) for x in sorted(recon)],
        "histogram_1s": Counter(int(x) for x in recon),
        "codes": a["codes"],
        "failures": a["failures"],
        "attempts": a["attempts"],
        "resumed": a["resumed"],
        "server_exit_s": round(t_exit - t_term, 3),
        "server_up_s": round(t_up - t_term, 3),
        "delivery_ms": [(n, round(last, 1)) for n, last, _med in delivery],
        "progress": [(round(t, 2), n) for t, n in progress[:: max(1, len(progress) // 100)]],
    }
    title = f"reconnect time after SIGTERM, {clients:,} clients"
    charts = [
        m.distribution(
            title,
            {"since SIGTERM": recon, "since the client saw the close": a["close_to_live_s"]},
            "s",
            goal=GOAL_S,
            goal_quantile=100,
        ),
        m.distribution(
            title, {"since SIGTERM": recon}, "s", goal=GOAL_S, goal_quantile=100, kind="histogram"
        ),
    ]
    m.write_result("ws_restart", rows, extra, charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

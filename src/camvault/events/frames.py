"""Live-protocol frames: what each logged event looks like on the WebSocket.

A *broadcast* frame goes to every client and carries ``seq`` (its event) and ``prev`` (the
seq of the broadcast frame before it), so a client that finds ``prev`` greater than the last
seq it saw knows it missed something. A *targeted* frame goes to one user (LOCK_BROKEN,
NOTIFICATION) or to every admin (MIRROR_STATUS) and carries its event's seq but no ``prev``.
PRESENCE, PONG and ERROR carry no seq.
See docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from camvault.events.log import EventType

FILE_EVENTS = frozenset(
    {
        EventType.FILE_UPLOADED,
        EventType.FILE_CHECKED_OUT,
        EventType.FILE_CHECKED_IN,
        EventType.FILE_CHECKOUT_CANCELLED,
        EventType.FILE_REVERTED,
        EventType.FILE_LOCK_BROKEN,
        EventType.FILE_RECOVERED,
    }
)
BROADCAST_EVENTS = FILE_EVENTS | {
    EventType.FILE_DELETED,
    EventType.USER_LOGGED_IN,
    EventType.USER_LOGGED_OUT,
    EventType.CONFIG_CHANGED,
}
MIRROR_EVENTS = frozenset(
    {
        EventType.MIRROR_CONFIGURED,
        EventType.MIRROR_REMOVED,
        EventType.MIRROR_PUSHED,
        EventType.MIRROR_FAILED,
    }
)

SESSION_EVENTS = frozenset(
    {EventType.USER_LOGGED_OUT, EventType.USER_PASSWORD_CHANGED, EventType.USER_UPDATED}
)


@dataclass(frozen=True)
class EventFrames:
    """The frames one event produces: one for everyone, some for single users, and one
    for the admins."""

    seq: int
    broadcast: dict[str, Any] | None
    targeted: tuple[tuple[str, dict[str, Any]], ...]
    # A user whose sessions may have ended (logout, password, disabled, role): the hub
    # re-checks that user's sockets, on every instance, whoever made the change.
    sessions_of: str | None = None
    # Shop settings changed (every instance reloads them); ``regrouped``: the file list
    # moved between groups, so every client gets a fresh snapshot after this event.
    config_changed: bool = False
    regrouped: bool = False
    # A user whose role changed: their sockets reconnect, so admin-only frames follow it.
    role_changed_of: str | None = None
    admins: dict[str, Any] | None = None


def frames_for(
    seq: int, type_: str, actor: str | None, filename: str | None, data: dict[str, Any]
) -> EventFrames:
    """Map one event-log row to its frames (without ``prev``, which the hub adds)."""
    try:
        kind: EventType | None = EventType(type_)
    except ValueError:  # a type this version does not know: no frame
        kind = None
    broadcast: dict[str, Any] | None = None
    targeted: list[tuple[str, dict[str, Any]]] = []
    if kind in FILE_EVENTS:
        broadcast = frame("FILE_UPDATED", {"file": data["file"]}, seq)
    elif kind is EventType.FILE_DELETED:
        broadcast = frame("FILE_REMOVED", {"filename": filename}, seq)
    elif kind is EventType.USER_LOGGED_IN:
        broadcast = frame("USER_LOGGED_IN", {"username": data["username"]}, seq)
    elif kind is EventType.USER_LOGGED_OUT:
        broadcast = frame("USER_LOGGED_OUT", {"username": data["username"]}, seq)
    elif kind is EventType.CONFIG_CHANGED:
        broadcast = frame("CONFIG_CHANGED", {"settings": data["settings"]}, seq)
    if kind is EventType.FILE_LOCK_BROKEN:
        payload = {"filename": filename, "by": actor, "reason": data["reason"]}
        targeted.append((data["holder"], frame("LOCK_BROKEN", payload, seq)))
    elif kind is EventType.NOTIFICATION:
        payload = {k: v for k, v in data.items() if k != "to"}
        targeted.append((data["to"], frame("NOTIFICATION", payload, seq)))
    sessions_of = data.get("username") if kind in SESSION_EVENTS else None
    config_changed = kind is EventType.CONFIG_CHANGED
    regrouped = config_changed and bool(data.get("regrouped"))
    admins = None
    if kind in MIRROR_EVENTS:
        admins = frame("MIRROR_STATUS", data["status"], seq)
    return EventFrames(
        seq,
        broadcast,
        tuple(targeted),
        sessions_of=sessions_of,
        config_changed=config_changed,
        regrouped=regrouped,
        admins=admins,
        role_changed_of=data["username"]
        if kind is EventType.USER_UPDATED and "role" in data
        else None,
    )


def frame(type_: str, payload: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_}
    if seq is not None:
        out["seq"] = seq
    out["payload"] = payload
    return out


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def snapshot_frame(seq: int, epoch: str, groups_json: bytes) -> str:
    """FILE_LIST_UPDATED built around the cached groups JSON (never re-encoded per client)."""
    head = orjson.dumps({"type": "FILE_LIST_UPDATED", "seq": seq, "epoch": epoch})
    return (head[:-1] + b',"payload":' + groups_json + b"}").decode()


def error_frame(code: str, message: str) -> str:
    return encode({"type": "ERROR", "payload": {"code": code, "message": message}})


PONG = encode({"type": "PONG"})

"""docs/protocol.md and its schema agree with each other and with the server's frames."""

from __future__ import annotations

from protocol_schema import SCHEMA, documented_examples, validate_frame

from camvault.events.frames import PONG, error_frame, frames_for, snapshot_frame
from camvault.mirror.state import unconfigured

CLIENT_TYPES = {"PING", "RESUME"}


def test_every_server_frame_type_has_a_valid_documented_example() -> None:
    examples = documented_examples()
    server = [e for e in examples if e["type"] not in CLIENT_TYPES]
    for example in server:
        validate_frame(example)
    documented = {e["type"] for e in server}
    assert documented == set(SCHEMA["$defs"]) - {"seq", "lock", "file", "broadcast"}


def test_frames_built_by_the_server_match_the_schema() -> None:
    import json

    record = {
        "filename": "1234567_A1.mcam", "group": "12XXXXX", "subgroup": "1234567", "size": 3,
        "sha256": "a" * 64, "version": 1, "revision": "1.0", "description": "",
        "modified_at": "2026-01-01T00:00:00.000Z", "modified_by": "ann", "lock": None,
    }  # fmt: skip
    made = frames_for(7, "file.lock_broken", "boss", "1234567_A1.mcam",
                      {"file": record, "holder": "ann", "reason": "away"})  # fmt: skip
    assert made.broadcast is not None
    validate_frame({**made.broadcast, "prev": 6})
    assert [user for user, _ in made.targeted] == ["ann"]
    validate_frame(made.targeted[0][1])
    validate_frame(json.loads(snapshot_frame(7, "e", b'{"12XXXXX":[]}')))
    for kind in ("mirror.configured", "mirror.removed", "mirror.pushed", "mirror.failed"):
        made = frames_for(9, kind, None, None, {"status": unconfigured()})
        assert made.broadcast is None and made.targeted == () and made.admins is not None
        validate_frame(made.admins)
    validate_frame(json.loads(PONG))
    validate_frame(json.loads(error_frame("bad_json", "nope")))

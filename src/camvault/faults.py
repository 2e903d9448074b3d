"""Fault injection for the crash and failure tests: the named steps of a check-in where a
test can kill the process (``kill -9``) or make the step fail.

Off unless ``CAMVAULT_FAULT=kill:<step>`` or ``fail:<step>`` is set when the vault opens;
then a loud warning is logged. Off, a checkpoint costs one comparison with None. Either
fault fires once. ``fail`` raises a StorageError (500 ``storage_error``) and exists only for
the steps before the database commit: a failure after it would not be a failure.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from camvault.errors import StorageError

ENV = "CAMVAULT_FAULT"

# The steps of a check-in, in order; ``main_moved`` is the point of no return (git has the
# version: a crash after it keeps the version, recovered from git at the next start).
STEPS = (
    "checkin.spooled",  # the body is in its temp file, fsync'd
    "checkin.staged",  # the content-store object (and a plain file's git blob) are stored
    "checkin.commit_written",  # the git commit object is written; main has not moved
    "checkin.main_moved",  # main points at the new commit
    "checkin.db_written",  # the version's rows are written, not yet committed
    "checkin.db_committed",  # the database transaction has committed
    "checkin.responding",  # the answer is about to be sent
)
FAILABLE = STEPS[: STEPS.index("checkin.db_written") + 1]

log = logging.getLogger("camvault.faults")


class FaultInjected(StorageError):
    """The failure ``CAMVAULT_FAULT=fail:<step>`` asked for."""


@dataclass
class _Fault:
    kind: str
    step: str


_armed: _Fault | None = None


def arm_from_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Read ``CAMVAULT_FAULT`` (at vault open); ValueError for an unknown fault or step."""
    global _armed
    value = environ.get(ENV, "").strip()
    if not value:
        _armed = None
        return
    kind, _, step = value.partition(":")
    allowed = {"kill": STEPS, "fail": FAILABLE}.get(kind)
    if allowed is None or step not in allowed:
        raise ValueError(
            f"{ENV}={value!r}: expected kill:<step> ({', '.join(STEPS)}) "
            f"or fail:<step> ({', '.join(FAILABLE)})"
        )
    _armed = _Fault(kind, step)
    log.warning("FAULT INJECTION ENABLED: %s at %s. Never run a real vault like this.", kind, step)


def checkpoint(step: str) -> None:
    """Mark that ``step`` is reached: kill the process or raise if a fault is armed for it."""
    global _armed
    fault = _armed
    if fault is None or fault.step != step:
        return
    _armed = None
    if fault.kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FaultInjected(f"fault injected at {step}")

"""The fault hook itself: off unless asked, strict about what it is asked, fires once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camvault import faults


@pytest.fixture(autouse=True)
def disarm() -> Iterator[None]:
    yield
    faults.arm_from_environment({})


def test_the_hook_does_nothing_unless_armed() -> None:
    faults.arm_from_environment({})
    for step in faults.STEPS:
        faults.checkpoint(step)


@pytest.mark.parametrize(
    "value", ["kill", "kill:", "kill:nope", "explode:checkin.staged", "fail:checkin.db_committed"]
)
def test_an_unknown_fault_or_step_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CAMVAULT_FAULT"):
        faults.arm_from_environment({faults.ENV: value})


def test_a_fail_fault_fires_once_at_its_step_only(caplog: pytest.LogCaptureFixture) -> None:
    faults.arm_from_environment({faults.ENV: "fail:checkin.main_moved"})
    assert "FAULT INJECTION ENABLED" in caplog.text
    faults.checkpoint("checkin.staged")
    faults.checkpoint("upload.main_moved")  # another action's git step
    with pytest.raises(faults.FaultInjected, match="checkin.main_moved") as raised:
        faults.checkpoint("checkin.main_moved")
    assert raised.value.code == "storage_error"
    faults.checkpoint("checkin.main_moved")

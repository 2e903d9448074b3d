"""Every operation of /api/openapi.json, fuzzed by schemathesis as a user and as an admin:
no server errors, every answer is what the document says (status, type, schema), and a
write the server refuses changes nothing (database rows, `main`, temp files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from camvault.api.app import create_app
from camvault.settings import Settings
from fuzz.running import DETERMINISTIC, FUZZ_SCALE, SEEDED, USER, RunningApp

ROLES = ["admin", USER]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Every other check runs. This one wants every schema-valid request accepted, but the
# server also applies rules JSON Schema cannot state, each refused with a documented 400:
# the password policy (common passwords), time zones that exist, the shop's allowed
# extensions and naming pattern (changed at runtime), a break-lock reason that is not
# only spaces, a link target that is in the vault.
EXCLUDED_CHECKS = [positive_data_acceptance]


def _document() -> dict[str, Any]:
    # The same document GET /api/openapi.json serves (checked below); built without I/O
    # so that collection can make one test per operation.
    return create_app(Settings(data=Path("unused"))).openapi()


schema = schemathesis.openapi.from_dict(_document())


@schema.hook
def flatmap_path_parameters(_context: Any, parameters: dict[str, Any]) -> Any:
    # Random names are nearly all 404s: most of the time, name a seeded file instead.
    if not parameters or "name" not in parameters:
        return st.just(parameters)
    return st.sampled_from([*SEEDED, None]).map(
        lambda name: parameters if name is None else {**parameters, "name": name}
    )


def call_and_validate(app: RunningApp, role: str, case: Any) -> None:
    """Send the case as ``role`` through the in-process client, then run the checks; a
    write the server refused must have changed nothing at all."""
    headers = app.headers(role)
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    prepared = requests.Request(**kwargs).prepare()
    writes = case.method.upper() not in SAFE_METHODS
    before = app.state() if writes else None
    response = app.client.request(
        prepared.method or "GET",
        prepared.url or "/",
        headers=dict(prepared.headers),
        content=prepared.body,
    )
    if writes and response.status_code < 400:
        app.changed = True
    elif before is not None:
        after = app.state()
        changed = [part for part in before if before[part] != after[part]]
        assert not changed, (
            f"{case.method} {case.formatted_path} was refused with {response.status_code} "
            f"but changed {changed}: {response.text[:300]}"
        )
    case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_fuzzed_document_is_the_one_served(seeded_app: RunningApp) -> None:
    response = seeded_app.client.get("/api/openapi.json", headers=seeded_app.headers(USER))
    assert response.status_code == 200
    assert response.json() == schema.raw_schema


# No operation is left out. Those that end the fuzzer's own session (logout, a disabled
# account, a new password) or change the shop are undone by RunningApp.restore() before
# the next case. The warning filter: the app's background tasks (the mirror's retry
# jitter) use the random module on the app's loop while Hypothesis draws, which Hypothesis
# takes for a strategy using it; no strategy here does.
@schema.parametrize()
@pytest.mark.filterwarnings("ignore:Do not use the `random` module")
@settings(DETERMINISTIC, max_examples=6 * FUZZ_SCALE)
def test_every_operation_answers_as_documented(
    case: Any, seeded_app: RunningApp, role: str
) -> None:
    seeded_app.restore()
    call_and_validate(seeded_app, role, case)


def test_every_read_of_every_seeded_file_answers_as_documented(
    seeded_app: RunningApp, role: str
) -> None:
    # Not left to chance: each file state (free, locked, several versions, a link) once.
    seeded_app.restore()
    paths = schema.raw_schema["paths"]
    reads = [path for path in paths if "{name}" in path and "get" in paths[path]]
    assert len(reads) == 3
    for path in reads:
        for name in SEEDED:
            case = schema[path]["GET"].Case(path_parameters={"name": name})
            call_and_validate(seeded_app, role, case)

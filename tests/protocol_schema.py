"""The documented live protocol: the JSON schema and the examples in docs/protocol.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA = json.loads((DOCS / "protocol.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def validate_frame(frame: dict[str, Any]) -> None:
    """Raise if a received frame is not one the protocol documents."""
    errors = sorted(VALIDATOR.iter_errors(frame), key=lambda e: e.path)
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise AssertionError(
            f"frame does not match docs/protocol.schema.json: {best.message}\n{frame}"
        )


def documented_examples() -> list[dict[str, Any]]:
    """Every ```json block of docs/protocol.md."""
    text = (DOCS / "protocol.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]

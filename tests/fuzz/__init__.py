"""Fuzzing and property tests: schemathesis over the API, hypothesis over names and the log."""

"""End-to-end tests: the real ``camvault serve`` and CLI in subprocesses."""

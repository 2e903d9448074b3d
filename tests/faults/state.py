"""What every fault must leave behind, checked on a real server's data dir: exactly the
versions expected with their bytes, the locks as expected, git and the database agreeing,
``git fsck --strict`` clean, and no temp file anywhere under the data dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

from e2e.server import Server, git_fsck, git_versions

HDF5 = b"\x89HDF\r\n\x1a\n"


def mcam(seed: int, size: int = 4096) -> bytes:
    """Distinct content that passes the .mcam check (HDF5 signature first)."""
    block = hashlib.sha256(str(seed).encode()).digest()
    body = (block * (size // len(block) + 1))[: size - len(HDF5)]
    return HDF5 + body


def leftovers(data: Path, server: Server | None) -> list[str]:
    """Temp and lock files under the data dir that no finished operation should leave: the
    upload spool (except the live instance's own empty dir), git's temp objects, ref locks."""
    found: list[str] = []
    tmp = data / "tmp"
    own = f"i{server.pid}-" if server is not None else None
    for path in sorted(tmp.rglob("*")):
        relative = path.relative_to(tmp)
        top = relative.parts[0]
        if own is not None and top.startswith(own) and relative.parts[1:] in ((), (".lock",)):
            continue
        found.append(f"tmp/{relative}")
    repo = data / "vault.git"
    for pattern in ("objects/**/tmp_*", "**/*.lock", "lfs/**/*.tmp", "lfs/tmp/*"):
        found += [str(p.relative_to(data)) for p in repo.glob(pattern) if p.is_file()]
    return found


def check_vault(
    server: Server,
    token: str,
    git_env: dict[str, str],
    expected: dict[str, list[bytes]],
    locks: dict[str, str | None],
) -> None:
    """``expected`` maps each file to its versions' contents (v1 first); ``locks`` to the
    holder each file must have (None: not checked out)."""
    with server.client(token) as api:
        api_versions = []
        for name, contents in expected.items():
            listed = api.get(f"/api/files/{name}/versions")
            assert listed.status_code == 200, listed.text
            versions = sorted(listed.json(), key=lambda v: v["version"])
            assert [v["version"] for v in versions] == list(range(1, len(contents) + 1)), (
                f"{name}: versions {[v['version'] for v in versions]}, expected {len(contents)}"
            )
            for version, content in zip(versions, contents, strict=True):
                assert version["sha256"] == hashlib.sha256(content).hexdigest()
                got = api.get(f"/api/files/{name}/content", params={"version": version["version"]})
                assert got.status_code == 200 and got.content == content
                number, sha, commit = version["version"], version["sha256"], version["commit"]
                api_versions.append((name, number, sha, commit))
        for name, holder in locks.items():
            record = api.get(f"/api/files/{name}").json()
            assert (record["lock"] or {}).get("user") == holder, f"{name}: lock {record['lock']}"
    repo = server.data / "vault.git"
    git_fsck(repo, git_env)
    assert git_versions(repo, git_env) == sorted(api_versions), "the database and git disagree"
    left = leftovers(server.data, server)
    assert left == [], f"left behind: {left}"

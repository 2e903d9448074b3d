"""One mirror push with the real git and git-lfs: LFS objects first, then the branch.

The token reaches git and git-lfs only through the child's environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``: an ``http.<origin>.extraHeader``
scoped to the remote's host), never argv (visible in ``ps``) nor a file. The children read no
system or user git config and never prompt. Whatever they print is scrubbed of the token
before anyone stores or logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pygit2
from anyio import to_thread
from pygit2.enums import DeltaStatus, RepositoryOpenFlag

from camvault.history.lfs import parse_pointer
from camvault.history.repo import MAIN_REF
from camvault.mirror.remote import Remote, basic_auth, scrub

MAX_POINTER = 1024
NICENESS = 10
MAX_ERROR = 2000
# What a git child may inherit: where programs, keys, proxies and CA bundles are.
_PASS_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SSH_AUTH_SOCK",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip
_KINDS = (
    # (kind, what git or git-lfs says), first match wins; numbers only as whole words (a
    # commit id in the output may well contain "401")
    ("rejected", r"\[(remote )?rejected\]|non-fast-forward|fetch first"),
    ("auth", r"authentication failed|\b40[13]\b|could not read username|permission denied"
             r"|forbidden|unauthorized"),
    ("unreachable", r"could not resolve|failed to connect|connection refused|couldn't connect"
                    r"|connection reset|timed out|does not appear to be a git repository"
                    r"|not found|\b404\b|no such file or directory|could not read from remote"
                    r"|unable to access|\b50[234]\b"),
)  # fmt: skip


class PushError(Exception):
    """A push that did not happen; ``kind`` is one of rejected, diverged, auth,
    unreachable, timeout, config, failed. The message is already scrubbed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where to push and with which credentials."""

    remote: Remote
    username: str
    token: str | None

    def secrets(self) -> list[str]:
        if self.token is None:
            return []
        header = basic_auth(self.username, self.token)
        return [self.token, header, header.removeprefix("Basic ")]


def child_env(repo_path: Path, target: Target) -> dict[str, str]:
    """The environment of every git child: no inherited git settings, no prompts, the
    credentials (if any) as config entries that exist only in this environment."""
    env = {key: os.environ[key] for key in _PASS_ENV if key in os.environ}
    config = [
        ("protocol.allow", "never"),
        *((f"protocol.{scheme}.allow", "always") for scheme in ("https", "http", "ssh", "file")),
        ("credential.helper", ""),
        ("lfs.locksverify", "false"),
        ("core.askPass", ""),
    ]
    if target.token is not None and target.remote.takes_token:
        header = basic_auth(target.username, target.token)
        config.append((f"http.{target.remote.origin}.extraHeader", f"Authorization: {header}"))
    env.update(
        GIT_DIR=str(repo_path),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes",
        GCM_INTERACTIVE="never",
        LC_ALL="C",
        GIT_CONFIG_COUNT=str(len(config)),
    )
    for n, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def classify(output: str) -> str:
    for kind, pattern in _KINDS:
        if re.search(pattern, output, re.IGNORECASE):
            return kind
    return "failed"


def _open(repo_path: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_path), RepositoryOpenFlag.NO_SEARCH)


def read_head(repo_path: Path) -> str | None:
    """The commit ``main`` points at (None while unborn). Blocking; opens its own handle."""
    try:
        return str(_open(repo_path).lookup_reference(MAIN_REF).target)
    except KeyError:
        return None


def count_commits(repo_path: Path, head: str | None, base: str | None) -> int:
    """Commits reachable from ``head`` but not from ``base`` (all of them if base is
    unknown). Blocking."""
    if head is None:
        return 0
    repo = _open(repo_path)
    walker = repo.walk(head)
    if base is not None and repo.get(base) is not None:
        walker.hide(base)
    return sum(1 for _ in walker)


def lfs_objects(repo_path: Path, head: str, base: str | None) -> list[str]:
    """The LFS oids the commits ``base..head`` point to (every commit if base is None),
    read from the pointers their trees add or change. Blocking."""
    repo = _open(repo_path)
    walker = repo.walk(head)
    if base is not None:
        walker.hide(base)
    seen: set[pygit2.Oid] = set()
    oids: set[str] = set()
    for commit in walker:
        if commit.parents:
            diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        else:
            diff = commit.tree.diff_to_tree(swap=True)
        for delta in diff.deltas:
            blob_id = delta.new_file.id
            if delta.status == DeltaStatus.DELETED or blob_id in seen:
                continue
            seen.add(blob_id)
            blob = repo.get(blob_id)
            if isinstance(blob, pygit2.Blob) and blob.size <= MAX_POINTER:
                pointer = parse_pointer(blob.data)
                if pointer is not None:
                    oids.add(pointer[0])
    return sorted(oids)


def _is_ancestor(repo_path: Path, ancestor: str, head: str) -> bool:
    repo = _open(repo_path)
    if repo.get(ancestor) is None:
        return False
    return ancestor == head or bool(repo.descendant_of(head, ancestor))


class Pusher:
    """Runs the git commands of a push as subprocesses, one at a time, with a timeout;
    ``kill()`` ends the running one (at shutdown)."""

    def __init__(self, repo_path: Path, timeout: float) -> None:
        self.repo_path = repo_path
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _kill_group(proc)

    async def push(self, target: Target, head: str | None) -> str | None:
        """Bring the remote's main to ``head``: raises PushError, else returns ``head``."""
        remote_head = await self._remote_head(target)
        if head is None or remote_head == head:
            return head
        if remote_head is not None and not await to_thread.run_sync(
            _is_ancestor, self.repo_path, remote_head, head
        ):
            raise PushError(
                "diverged",
                f"the remote's main ({remote_head[:12]}) is not in the vault's history: it "
                "has commits the vault does not have. camvault never overwrites a remote "
                "branch; reset or remove the remote's main, or mirror to another repository",
            )
        oids = await to_thread.run_sync(lfs_objects, self.repo_path, head, remote_head)
        if oids:
            stdin = "".join(f"{oid}\n" for oid in oids).encode()
            await self._git(target, "git lfs push", stdin, "lfs", "push", "--object-id",
                            target.remote.url, "--stdin")  # fmt: skip
        # The commit id, not "main": a commit made meanwhile may need LFS objects not pushed.
        await self._git(target, "git push", None, "push", "--porcelain", "--no-verify",
                        target.remote.url, f"{head}:{MAIN_REF}")  # fmt: skip
        return head

    async def _remote_head(self, target: Target) -> str | None:
        out = await self._git(
            target, "git ls-remote", None, "ls-remote", "--refs", target.remote.url, MAIN_REF
        )
        for line in out.splitlines():
            commit, _, ref = line.partition("\t")
            if ref.strip() == MAIN_REF:
                return commit.strip()
        return None

    async def _git(self, target: Target, what: str, stdin: bytes | None, *args: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                "git",
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(self.repo_path, target),
                cwd=self.repo_path,
                # Its own process group: git starts git-lfs, ssh, receive-pack...; a kill
                # (timeout, shutdown) must take them all.
                start_new_session=True,
            )
        except OSError as exc:
            raise PushError("failed", f"{what}: cannot run git: {exc.strerror}") from exc
        self._proc = proc
        with contextlib.suppress(OSError):  # it may have exited already
            # Below the server's priority (its children inherit it): a push may take the
            # CPU the server leaves idle, never the CPU a check-in needs.
            os.setpriority(os.PRIO_PROCESS, proc.pid, NICENESS)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
        except TimeoutError as exc:
            _kill_group(proc)
            await proc.wait()
            raise PushError("timeout", f"{what} took longer than {self.timeout:.0f} s") from exc
        finally:
            self._proc = None
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            said = scrub((err.decode(errors="replace") + "\n" + text).strip(), target.secrets())
            tail = "\n".join(said.splitlines()[-20:])[-MAX_ERROR:]
            detail = tail or f"exit status {proc.returncode}"
            raise PushError(classify(said), f"{what} failed: {detail}")
        return text


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)

"""Terminal output of the long-running commands (import, rebuild): a rich progress bar with
files, bytes and ETA on stderr, and the plain-text summaries on stdout."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from camvault.services.importer import ImportReport
from camvault.services.rebuild import RebuildReport

Echo = Callable[[str], None]


class ProgressBar:
    """An import's progress on stderr: files done of total, bytes done of total, speed, ETA."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None
        self._files = 0

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, files: int, total_bytes: int | None) -> None:
        self._task = self._progress.add_task(
            self.label, total=total_bytes, files=0, total_files=files
        )

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def file_done(self) -> None:
        self._files += 1
        if self._task is not None:
            self._progress.update(self._task, files=self._files)


def _version(number: int) -> str:
    return f" (version {number})" if number else ""


def _size(nbytes: int) -> str:
    return f"{nbytes / 1_000_000:,.1f} MB"


def print_import_report(report: ImportReport, echo: Echo) -> None:
    """Everything not imported with its reason, then one line per category."""
    verb = "would import" if report.dry_run else "imported"
    for item in report.imported:
        echo(f"{verb}: {item.name} <- {item.source}{_version(item.version)}")
    for item in report.deleted:
        echo(f"{'would delete' if report.dry_run else 'deleted'}: {item.name} <- {item.source}")
    for item in report.already:
        echo(f"already in the vault: {item.name} <- {item.source}{_version(item.version)}")
    for dup in report.duplicates:
        if dup.identical:
            echo(
                f"duplicate: {dup.name} appears {len(dup.sources)} times with the same content "
                f"({', '.join(dup.sources)}); taken once"
            )
        else:
            echo(
                f"duplicate: {dup.name} appears {len(dup.sources)} times with different content "
                f"({', '.join(dup.sources)}); none imported"
            )
    for refusal in report.refused:
        echo(f"refused: {refusal.source}: {refusal.reason} [{refusal.code}]")
    for warning in report.warnings:
        echo(f"warning: {warning}")
    total = sum(item.size for item in report.imported)
    echo("")
    echo(f"{verb}: {len(report.imported)} files, {_size(total)}")
    if report.deleted:
        echo(f"{'would delete' if report.dry_run else 'deleted'}: {len(report.deleted)}")
    echo(f"skipped, already in the vault: {len(report.already)}")
    echo(f"refused: {len(report.refused)}")
    echo(f"duplicate names: {len(report.duplicates)}")


def print_rebuild_report(report: RebuildReport, echo: Echo) -> None:
    """What a rebuild found: counts, changed files, dropped locks and missing content."""
    echo(
        f"rebuilt from {report.commits} commits: {report.live_files} files, "
        f"{report.versions} versions ({report.deleted_files} deleted files)"
    )
    for name in report.changed:
        echo(f"changed: {name}")
    for name in report.removed:
        echo(f"removed (not in git): {name}")
    echo(f"locks kept: {report.locks_kept}")
    for name, holder in report.locks_dropped:
        echo(f"lock dropped: {name} (held by {holder}); the file is not in git")
    for name, version in report.restored_content:
        echo(f"content restored from git: {name} version {version}")
    for name, version, sha in report.missing_content:
        echo(f"content missing: {name} version {version} (LFS object {sha})")

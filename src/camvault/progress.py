"""A rich progress bar for the long CLI commands (backup, restore): one line per stage."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _AmountColumn(ProgressColumn):
    """``12.3 MB/40.0 MB`` for bytes, ``1,200/5,000 rows`` for counts."""

    def render(self, task: Task) -> Text:
        unit = str(task.fields.get("unit", ""))
        done = int(task.completed)
        total = None if task.total is None else int(task.total)
        if unit == "bytes":
            shown = decimal(done) if total is None else f"{decimal(done)}/{decimal(total)}"
        elif unit:
            shown = f"{done:,}" if total is None else f"{done:,}/{total:,} {unit}"
        else:
            shown = ""
        return Text(shown, style="progress.download")


class RichProgress:
    """Implements the services' ``Progress`` protocol on stderr; stdout keeps the summary."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<12}"),
            BarColumn(),
            _AmountColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._finish()
        self._progress.stop()

    def _finish(self) -> None:
        if self._task is not None:
            task = next(task for task in self._progress.tasks if task.id == self._task)
            total = task.total if task.total is not None else task.completed
            self._progress.update(self._task, total=total, completed=total)

    def stage(self, description: str, total: int | None, unit: str) -> None:
        self._finish()
        self._task = self._progress.add_task(description, total=total, unit=unit)

    def advance(self, amount: int) -> None:
        if self._task is not None and amount:
            self._progress.advance(self._task, amount)

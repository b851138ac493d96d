"""Progress for long work: a bar on a terminal, plain lines otherwise (logs, pipes, CI)."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

ProgressFn = Callable[[str, int, int], None]
PLAIN_INTERVAL_SECONDS = 2.0


@contextmanager
def progress_reporter(console: Console) -> Iterator[ProgressFn]:
    """Yield a callback ``(phase, done, total)``; total 0 means unknown."""
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def update(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total or None)
                bar.update(tasks[phase], completed=done, total=total or None)

            yield update
        return

    last_line = 0.0

    def plain(phase: str, done: int, total: int) -> None:
        nonlocal last_line
        now = time.monotonic()
        finished = total and done >= total
        if finished or now - last_line >= PLAIN_INTERVAL_SECONDS:
            last_line = now
            of_total = f"/{total}" if total else ""
            console.print(f"{phase}: {done}{of_total}", highlight=False)

    yield plain

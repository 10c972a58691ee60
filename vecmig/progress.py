"""What long work shows: a progress bar on a terminal, nothing in scripts or with --json."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass


class _Silent:
    def update(self, n: int) -> None:
        pass


@dataclass
class Reporter:
    """Where commands say what they do. ``quiet`` (``--json``) keeps stdout for the result alone."""

    quiet: bool = False
    bars: bool | None = None  # None: only when stderr is a terminal

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    @contextmanager
    def progress(self, total: int, label: str, done: int = 0):
        show = self.bars if self.bars is not None else sys.stderr.isatty()
        if self.quiet or not show or total <= 0:
            yield _Silent()
            return
        import click

        started, shown = time.monotonic(), {}

        def rate(_item) -> str | None:  # points/s of this run (a resumed run starts at `done`)
            bar, elapsed = shown.get("bar"), time.monotonic() - started
            return f"{(bar.pos - done) / elapsed:,.0f}/s" if bar and elapsed > 0.5 and bar.pos > done else None

        with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True, item_show_func=rate) as bar:
            shown["bar"] = bar
            if done:
                bar.update(done)
            yield bar


def silent() -> Reporter:
    return Reporter(quiet=True)

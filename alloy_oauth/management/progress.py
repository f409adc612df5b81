"""A progress bar for the management commands, on a terminal only."""

from __future__ import annotations

import sys

WIDTH = 30


def show(label: str, done: int, total: int) -> None:
    """Redraw ``label [####....] done/total`` on standard error, if it is a terminal."""
    if not sys.stderr.isatty():
        return
    total = max(total, 1)
    filled = WIDTH * min(done, total) // total
    sys.stderr.write(f"\r{label}[{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def clear_line() -> None:
    """Make room for a message while a bar is drawn."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")

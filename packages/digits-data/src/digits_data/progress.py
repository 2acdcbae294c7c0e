"""A minimal progress bar on stderr, shown only when stderr is a terminal."""

import sys
import time
from typing import TextIO


class Progress:
    """Report progress of ``total`` units as ``desc  42% 420/1000``; silent unless on a terminal.

    Use as a context manager and call :meth:`update` with the units just done.
    """

    def __init__(self, total: int, desc: str, unit: str = "", stream: TextIO | None = None) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.total > 0 and self.stream.isatty()
        self.done = 0
        self._last_draw = 0.0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def update(self, n: int = 1) -> None:
        """Record ``n`` more units done and redraw at most ten times a second."""
        self.done = min(self.done + n, self.total)
        if self.enabled:
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        pct = 100 * self.done / self.total
        self.stream.write(f"\r{self.desc} {pct:3.0f}% {self.done}/{self.total}{self.unit}")
        self.stream.flush()

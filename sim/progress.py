"""Progress bars with an ETA for the long commands, silent when nobody is watching.

Why one helper: DES replicates, batches, calibrations, backtests, sweeps and
sensitivity runs all take from seconds to minutes, and each used to print one line per
step with no estimate of the time left.  A bar on stderr says how far and how long; but
under ``--quiet``, or when stderr is not a terminal (``make``, CI, a pipe, a log file),
it prints nothing at all, so logs and piped output stay exactly the command's own.

Foundation layer: imports nothing from ``sim`` (tqdm only, imported when a bar is
actually shown, so a quiet run never loads it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")


class Bar(Protocol):
    """What callers use of a bar: advance it, say what it is on, close it."""

    def update(self, n: int = 1) -> Any: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...
    def close(self) -> Any: ...


class _Silent:
    """A bar that draws nothing (quiet, or stderr is not a terminal)."""

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def shown(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """True when a bar should be drawn: not quiet and ``stream`` (stderr) is a TTY."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def bar(total: int | None, label: str, quiet: bool = False, unit: str = "step",
        stream: TextIO | None = None) -> Any:
    """A tqdm bar on stderr with elapsed time and ETA, or a silent stand-in.

    Use as a context manager or call ``close()``; ``update(n)`` advances it."""
    stream = sys.stderr if stream is None else stream
    if not shown(quiet, stream):
        return _Silent()
    from tqdm import tqdm  # deferred: a quiet or piped run never imports it

    return tqdm(total=total, desc=label, unit=unit, file=stream, leave=True,
                dynamic_ncols=True, mininterval=0.2)


def track(items: Iterable[T], label: str, total: int | None = None, quiet: bool = False,
          unit: str = "step", stream: TextIO | None = None) -> Iterator[T]:
    """Iterate ``items`` with a bar (``total`` defaults to ``len(items)`` if it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = bar(total, label, quiet, unit, stream)
    try:
        for item in items:
            yield item
            progress.update(1)
    finally:
        progress.close()


def callback(label: str, quiet: bool = False, unit: str = "step",
             stream: TextIO | None = None) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback (the engines' signature) driving one bar,
    or None when nothing would be shown (so the engine skips the calls).

    The bar is created at the first call (the total is known then) and closed when
    ``done`` reaches ``total``."""
    if not shown(quiet, stream):
        return None
    state: dict[str, Any] = {"bar": None, "done": 0}

    def report(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = bar(total, label, quiet, unit, stream)
        state["bar"].update(done - state["done"])
        state["done"] = done
        if done >= total:
            state["bar"].close()

    return report


def wrote_line(paths: Iterable[object]) -> str:
    """The last line of every command that writes files: what it wrote, in order."""
    return "wrote " + ", ".join(str(p) for p in paths)

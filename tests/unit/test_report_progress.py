"""sim/progress.py: a bar with an ETA on a terminal, nothing at all under --quiet or
when stderr is not a terminal (make, CI, a pipe)."""

from __future__ import annotations

import io
import sys

import pytest

from sim.progress import bar, callback, shown, track, wrote_line
from sim.run import stderr_progress


class Terminal(io.StringIO):
    """A stream that says it is a TTY."""

    def isatty(self) -> bool:
        return True


def test_shown_only_on_a_terminal_and_not_quiet() -> None:
    assert shown(stream=Terminal())
    assert not shown(quiet=True, stream=Terminal())
    assert not shown(stream=io.StringIO())  # a pipe or a file


def test_a_bar_on_a_terminal_shows_count_and_eta() -> None:
    stream = Terminal()
    assert list(track(range(4), "replicates", stream=stream, unit="replicate")) == [0, 1, 2,
                                                                                    3]
    text = stream.getvalue()
    assert "replicates" in text and "4/4" in text
    assert "<" in text  # elapsed<remaining: the ETA


def test_nothing_is_written_when_quiet_or_piped() -> None:
    for stream, quiet in ((io.StringIO(), False), (Terminal(), True)):
        with bar(3, "sweep", quiet=quiet, stream=stream) as progress:
            progress.update(3)
        assert list(track([1, 2], "x", quiet=quiet, stream=stream)) == [1, 2]
        assert callback("des", quiet=quiet, stream=stream) is None
        assert stream.getvalue() == ""


def test_engine_callback_drives_one_bar() -> None:
    stream = Terminal()
    report = callback("replicates", stream=stream)
    assert report is not None
    for done in (5, 10, 20):  # the DES reports every few replicates
        report(done, 20)
    assert "20/20" in stream.getvalue()


def test_des_progress_is_silent_when_stderr_is_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert stderr_progress("baseline replicates") is None  # the engine skips the calls
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert stderr_progress("baseline replicates") is not None


def test_wrote_line() -> None:
    assert wrote_line(["a.nc", "a.csv"]) == "wrote a.nc, a.csv"

"""Check where a command will write, before it does any work.

Why: a run used to simulate for minutes and only then find that ``--out`` named a
directory, an extension it cannot write, or a folder it may not write to (leaving a
stray ``outputs.csv`` behind, or nothing but a traceback).  Every command that writes
calls :func:`check_output_path` on each file it will write, first; a bad location is
then one :class:`~sim.errors.InputError` line and nothing is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sim.errors import InputError, shown

# Longest file name accepted, in UTF-8 bytes: file systems allow 255, and the atomic
# writer (sim/results/io.py) adds a dot, eight random characters and ".tmp".
MAX_NAME_BYTES = 200


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists (what ``mkdir -p`` starts from)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _can_write_in(folder: Path) -> str | None:
    """None if a file can be created in ``folder``, else why not.  A real probe (an
    unnamed temporary file, gone when closed), not a permission-bit guess: read-only
    mounts, full quotas and root's exemptions are all answered truthfully."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_output_path(path: str | Path, *, key: str = "--out",
                      suffixes: Sequence[str] = (".nc",)) -> Path:
    """``path`` as a :class:`Path` if a command can write a file there, else a one-line
    :class:`InputError` naming ``key``.

    Refused: an empty name; control characters (NUL included); a directory, or a name
    ending in ``/``; an extension not in ``suffixes``; a file name over
    :data:`MAX_NAME_BYTES` bytes; something that exists but is not a regular file; a
    folder that is not a folder, cannot be created, or cannot be written.  Nothing is
    created (missing folders are made by the writer, after the run).
    """
    text = str(path)
    label = f"{key} '{shown(text)}'"
    if not text.strip():
        raise InputError(f"{key}: the output path is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InputError(f"{label}: the path contains control characters")
    out = Path(text)
    if text.endswith(("/", os.sep)) or out.name in {"", ".", ".."}:
        raise InputError(f"{label} names a directory; give a file name ending in "
                         f"{' or '.join(suffixes)}")
    try:
        if out.is_dir():
            raise InputError(f"{label} is a directory; give a file name ending in "
                             f"{' or '.join(suffixes)}")
        if out.suffix.lower() not in suffixes:
            got = f"'{shown(out.suffix)}' files" if out.suffix else "a file with no extension"
            raise InputError(f"{label}: this command cannot write {got}; the file name "
                             f"must end in {' or '.join(suffixes)}")
        if len(out.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InputError(f"{label}: the file name is longer than {MAX_NAME_BYTES} "
                             "bytes")
        if out.exists() and not out.is_file():
            raise InputError(f"{label} exists and is not a regular file")
        folder = _nearest_existing(out.parent)
        if not folder.is_dir():
            raise InputError(f"{label}: cannot create the folder: '{shown(str(folder))}' "
                             "is a file")
        reason = _can_write_in(folder)
    except (OSError, ValueError) as exc:
        raise InputError(f"{label}: cannot write there: {shown(str(exc), 120)}") from None
    if reason is not None:
        raise InputError(f"{label}: cannot write in folder '{shown(str(folder))}': "
                         f"{reason}")
    return out

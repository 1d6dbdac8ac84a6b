"""Errors the CLI turns into exit codes.

``InputError`` means the user's input is wrong (a scenario, a key, a file): the CLI
prints its one-line message to stderr and exits 2, writing nothing.  Anything else is
a bug in cicsim and exits 1.

Messages echo what the user typed, which may be anything: :func:`shown` quotes a key
or value safely (control characters escaped, long text cut short), and every message
has its control characters escaped, so an error can never rewrite the terminal or run
to pages.
"""

from __future__ import annotations

import reprlib
from typing import Any

# Longest echo of a user's key or value in a message (the rest becomes "…").
SHOWN_CHARACTERS = 60

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = _repr.maxother = _repr.maxlong = SHOWN_CHARACTERS
_repr.maxdict = _repr.maxlist = _repr.maxtuple = 4


# Line and paragraph separators, and the bidirectional overrides and isolates that can
# make a terminal show text in an order other than the bytes' ("Trojan Source").
_INVISIBLE = frozenset([0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def escape_controls(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1), line separator, bidi
    control and lone surrogate (undecodable command-line bytes) written as a
    ``\\x..``/``\\u....`` escape, so it prints on one line and cannot move the cursor,
    clear the screen, change colours or reorder what is shown."""
    out = []
    for char in text:
        code = ord(char)
        if (code < 0x20 or 0x7F <= code <= 0x9F or code in _INVISIBLE
                or 0xD800 <= code <= 0xDFFF):
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """A user's key or value as it may appear in a message: strings as typed (no
    quotes), anything else as a short repr (nested tables cut at a few levels, huge
    integers elided), control characters escaped, at most ``limit`` characters."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        text = f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    else:
        try:
            text = _repr.repr(value)
        except (ValueError, RecursionError):  # e.g. an int past Python's digit limit
            text = f"<{type(value).__name__}>"
    text = escape_controls(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class InputError(Exception):
    """Bad user input; the message names the file and the key."""

    def __init__(self, message: str) -> None:
        super().__init__(escape_controls(message.replace("\r\n", " ").replace("\n", " ")))

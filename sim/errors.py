"""Errors the CLI turns into exit codes.

``InputError`` means the user's input is wrong (a scenario, a key, a file): the CLI
prints its one-line message to stderr and exits 2, writing nothing.  Anything else is
a bug in cicsim and exits 1.
"""


class InputError(Exception):
    """Bad user input; the message names the file and the key."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\n", " "))

"""CLI subcommands for this package (placeholder until implemented)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add this package's subcommands to ``cicsim``."""
    del subparsers
    _ = argparse

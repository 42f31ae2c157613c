"""What the command groups share: exit codes, argument checks, the acting user, tables."""

from __future__ import annotations

import argparse
import getpass
import os
import re
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_group(commands: Any, name: str, *, help: str, description: str, **extra: Any) -> Any:
    """A command whose work is split in actions (`refunds NAME ACTION`): the actions' parsers."""
    group = commands.add_parser(name, help=help, description=description, **extra)
    return group.add_subparsers(title="actions", metavar="ACTION", required=True)


def postgres_url(value: str) -> str:
    if not re.match(r"^postgres(ql)?://", value):
        raise argparse.ArgumentTypeError(f"expected postgresql://..., got {value!r}")
    return value


def actor() -> str:
    """Who runs the command, as the ledgers record it: `cli:<login>`."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"


def aligned(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows as lines: every column but the last padded to its widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (
            indent + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        ).rstrip()
        for row in rows
    ]

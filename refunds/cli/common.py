"""What the command groups share: exit codes, argument checks, the acting user, tables."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from shared import staff_tokens as jwt

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
CLI_TOKEN_TTL_SECONDS = 300  # the staff token a command makes for itself


def add_group(commands: Any, name: str, *, help: str, description: str, **extra: Any) -> Any:
    """A command whose work is split in actions (`refunds NAME ACTION`): the actions' parsers."""
    group = commands.add_parser(name, help=help, description=description, **extra)
    return group.add_subparsers(title="actions", metavar="ACTION", required=True)


def postgres_url(value: str) -> str:
    if not re.match(r"^postgres(ql)?://", value):
        raise argparse.ArgumentTypeError(f"expected postgresql://..., got {value!r}")
    return value


def http_url(value: str) -> str:
    if not re.match(r"^https?://[^/]", value):
        raise argparse.ArgumentTypeError(f"expected http(s)://host[:port], got {value!r}")
    return value.rstrip("/")


def add_admin_call_options(parser: Any, service: str, url: str) -> None:
    """The options of an admin command that calls `service` over HTTP at `url` by default."""
    parser.add_argument(
        "--url", default=url, type=http_url, help=f"{service}'s base URL (%(default)s)"
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="a staff JWT with the admin role (default: a 5-minute admin token for "
        "cli:<login>, signed with the configured secret, or the dev secret in dev)",
    )
    parser.add_argument("--json", action="store_true", help=f"print {service}'s answer as JSON")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="default %(default)s"
    )


def staff_token(role: str, where: str) -> str | None:
    """A 5-minute staff JWT with `role` for `cli:<login>`, signed with the configured secret
    (the dev secret in dev); None, with the reason printed, when there is no secret."""
    try:
        secret = jwt.secret_from_env(os.environ)
    except LookupError as error:
        print(f"{where}: {error} (or pass --token)", file=sys.stderr)
        return None
    return jwt.encode(jwt.staff_claims(actor(), [role], CLI_TOKEN_TTL_SECONDS), secret)


def problem_text(response: Any) -> str:
    """An HTTP error as a line: the problem's status, title, detail and field errors."""
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if not isinstance(problem, dict):
        return f"HTTP {response.status_code}"
    text = f"HTTP {response.status_code} {problem.get('title', '')}: {problem.get('detail', '')}"
    for error in problem.get("errors") or []:
        text += f"\n  {error.get('field')}: {error.get('message')}"
    return text


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

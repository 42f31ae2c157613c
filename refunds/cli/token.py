"""`refunds token`: a staff JWT for the local stack."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from refunds.cli.common import EXIT_OK, EXIT_USAGE
from shared import staff_tokens as jwt

DEFAULT_TTL_SECONDS = 3600


def add(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="print a staff JWT for the local stack",
        description=f"Print an HS256 staff JWT signed with ${jwt.SECRET_ENV} "
        "(in dev, when unset, with the built-in dev secret).",
    )
    token.add_argument("--sub", required=True, metavar="NAME", help="the staff member")
    token.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        metavar="ROLE",
        help=f"repeatable; one of: {', '.join(jwt.STAFF_ROLES)}",
    )
    token.add_argument(
        "--ttl", type=_positive_int, default=DEFAULT_TTL_SECONDS, help="seconds (default 3600)"
    )
    token.set_defaults(handler=run_token, parser=token)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {number}")
    return number


def run_token(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    unknown = [role for role in args.roles if role not in jwt.STAFF_ROLES]
    if unknown:
        parser.error(  # exits 2
            f"unknown role(s): {', '.join(unknown)}; allowed: {', '.join(jwt.STAFF_ROLES)}"
        )
    if not args.sub.strip():
        parser.error("--sub must not be empty")
    try:
        secret = jwt.secret_from_env(os.environ)
    except LookupError as error:
        print(f"refunds token: {error}", file=sys.stderr)
        return EXIT_USAGE
    roles = list(dict.fromkeys(args.roles))  # drop repeats, keep the order given
    print(jwt.encode(jwt.staff_claims(args.sub.strip(), roles, args.ttl), secret))
    return EXIT_OK

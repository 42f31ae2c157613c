"""The `refunds` command line: run the local stack, mint staff tokens, write the AsyncAPI file."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from refunds import jwt
from refunds.devstack import COMPONENTS, Ports, Stack, StackError, describe_exit
from shared.auth import DEV_API_KEY, DEV_TENANT

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
WATCH_SECONDS = 0.2
DEFAULT_TTL_SECONDS = 3600

_DESCRIPTIONS = {
    "broker": "Kafka bootstrap (tansu, in memory)",
    "gateway": "sandbox payment gateway; ledger at /ledger",
    "mailsink": "SMTP mail sink; messages filed in <data>/mail",
    "intake": "platform refund API; docs at /docs",
    "review": "review queue and decisions; docs at /docs",
    "payout": "payouts and reconciliation; docs at /docs",
    "notify": "notifications; docs at /docs",
}
# A minimal request intake accepts; a unit test keeps it in step with intake's schema.
EXAMPLE_REFUND: dict[str, Any] = {
    "order": {
        "id": "ORD-1001",
        "customer_id": "C-42",
        "paid": {"amount": 12900, "currency": "CNY"},
        "paid_at": "2026-11-01T10:00:00Z",
        "payment": {"method": "alipay", "reference": "2026110122001"},
        "items": [
            {
                "sku": "TSHIRT-L-WHITE",
                "name": "T-shirt, L, white",
                "category": "apparel",
                "quantity": 1,
                "unit_price": {"amount": 12900, "currency": "CNY"},
            }
        ],
    },
    "reason": "damaged",
    "desired_outcome": "full_refund",
    "customer": {"email": "li.wei@example.com"},
    "channel": "app",
}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return its exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refunds", description="Event-sourced refund workflow: developer commands."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_dev(commands)
    _add_token(commands)
    _add_asyncapi(commands)
    return parser


# -- refunds dev ---------------------------------------------------------------------------------


def _add_dev(commands: Any) -> None:
    dev = commands.add_parser(
        "dev",
        help="run the whole stack locally until Ctrl-C",
        description="Start the broker, sandboxes and four services on 127.0.0.1; "
        "print where each listens; stop them all on Ctrl-C.",
    )
    dev.add_argument("--data-dir", type=Path, default=Path("data"), help="default: %(default)s")
    dev.add_argument(
        "--postgres",
        metavar="URL",
        type=_postgres_url,
        help="postgresql://user:pass@host:port/db instead of SQLite files",
    )
    dev.add_argument(
        "--base-port",
        dest="ports",
        metavar="N",
        type=_ports_from_base,
        help="services on N+1..N+4, gateway N+10, SMTP N+25, broker N+92 "
        "(default: 8001-8004, 8010, 8025, 9092)",
    )
    dev.set_defaults(handler=run_dev)


def _postgres_url(value: str) -> str:
    if not re.match(r"^postgres(ql)?://", value):
        raise argparse.ArgumentTypeError(f"expected postgresql://..., got {value!r}")
    return value


def _ports_from_base(value: str) -> Ports:
    try:
        return Ports.from_base(int(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_dev(args: argparse.Namespace) -> int:
    stack = Stack(args.data_dir, args.ports or Ports(), database_url=args.postgres)
    print(f"Starting the local stack (logs in {stack.data_dir / 'logs'}) ...", flush=True)
    with _StopSignals() as stop:
        try:
            stack.start_all()
        except StackError as error:
            print(f"refunds dev: {error}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            # start_all has already stopped whatever it had started.
            print("Interrupted during start-up; everything is stopped.", flush=True)
            return EXIT_OK
        stop.interrupt = False
        print(banner(stack), flush=True)
        dead = _watch(stack, stop)
        if dead:
            name, code = dead
            print(
                f"refunds dev: {name} {describe_exit(code)}; stopping the rest. "
                f"Last lines of {stack.log_path(name)}:\n{stack.log_tail(name)}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print("Stopping ...", flush=True)
        stack.stop_all()
    print("Stopped.")
    return EXIT_FAILED if dead else EXIT_OK


def _watch(stack: Stack, stop: _StopSignals) -> tuple[str, int] | None:
    """Wait for a stop signal (None) or for a component to die (its name and exit code)."""
    while stop.signum is None:
        exited = stack.exited()
        if exited:
            return next(iter(exited.items()))
        time.sleep(WATCH_SECONDS)
    return None


class _StopSignals:
    """SIGINT/SIGTERM: abort start-up with KeyboardInterrupt, afterwards only record the wish."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.interrupt = True
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        # Only the first signal interrupts, so a second Ctrl-C cannot break the orderly stop.
        if first and self.interrupt:
            raise KeyboardInterrupt


def banner(stack: Stack) -> str:
    """Where each component listens, the dev credentials and a request to try."""
    rows = [("COMPONENT", "LISTENS ON", "WHAT")]
    for name in COMPONENTS:
        where = stack.bootstrap if name == "broker" else stack.url(name)
        rows.append((name, where, _DESCRIPTIONS[name]))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    table = "\n".join(f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)
    return "\n".join(
        [
            f"\nThe local stack is up (data in {stack.data_dir}).\n",
            table,
            "",
            f"Dev tenant:   {DEV_TENANT}",
            f"API key:      {DEV_API_KEY}",
            "Staff token:  refunds token --sub alice --role reviewer",
            f"Logs:         {stack.data_dir / 'logs'}/<component>.log",
            "",
            "Submit a refund (run it twice: the same Idempotency-Key replays the answer):",
            curl_example(stack.url("intake")),
            "",
            "Ctrl-C to stop.",
        ]
    )


def curl_example(intake_url: str) -> str:
    body = shlex.quote(json.dumps(EXAMPLE_REFUND, separators=(",", ":")))
    return " \\\n".join(
        [
            f"  curl -sS -X POST {intake_url}/v1/refunds",
            f"    -H 'Authorization: Bearer {DEV_API_KEY}'",
            "    -H 'Content-Type: application/json'",
            "    -H 'Idempotency-Key: demo-0001'",
            f"    -d {body}",
        ]
    )


# -- refunds token -------------------------------------------------------------------------------


def _add_token(commands: Any) -> None:
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


# -- refunds asyncapi ----------------------------------------------------------------------------


def _add_asyncapi(commands: Any) -> None:
    asyncapi = commands.add_parser(
        "asyncapi",
        help="write the AsyncAPI document of the Kafka events",
        description="Generate the AsyncAPI document for the integration events.",
    )
    asyncapi.add_argument(
        "--output", type=Path, default=Path("docs/asyncapi.json"), help="default: %(default)s"
    )
    asyncapi.set_defaults(handler=run_asyncapi)


def run_asyncapi(args: argparse.Namespace) -> int:
    from refunds.asyncapi import generate  # only this subcommand needs the schemas

    document = generate()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return EXIT_OK

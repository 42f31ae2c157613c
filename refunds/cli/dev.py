"""`refunds dev`: the whole stack on 127.0.0.1 until Ctrl-C, and the banner it prints."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from refunds.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, aligned, postgres_url
from refunds.devstack import Ports, Stack, StackError, describe_exit
from sandbox.identity.people import DEMO_PASSWORD, PEOPLE
from shared.auth import DEV_API_KEY, DEV_TENANT

WATCH_SECONDS = 0.2
MAX_REPLICAS = 8
# A replica that dies is started again; one that dies this often in a row stops the stack.
MAX_RESTARTS = 5

_DESCRIPTIONS = {
    "broker": "Kafka bootstrap (tansu, in memory)",
    "gateway": "sandbox payment gateway; ledger at /ledger",
    "mailsink": "SMTP mail sink; messages filed in <data>/mail",
    "sms": "sandbox SMS provider; messages at /v1/messages",
    "carrier": "sandbox carrier (Kuaidi100 protocol); shipments at /sandbox/shipments",
    "identity": "sandbox identity provider (OpenID Connect); staff sign in here",
    "stripe": "Stripe emulator: the dev tenant's card refunds (sandbox/STRIPE.md)",
    "alipay": "Alipay emulator: the dev tenant's Alipay refunds (sandbox/ALIPAY.md)",
    "wechatpay": "WeChat Pay emulator: the dev tenant's WeChat Pay refunds (sandbox/WECHATPAY.md)",
    "intake": "platform refund API; docs at /docs",
    "review": "review queue and decisions; docs at /docs",
    "payout": "payouts and reconciliation; docs at /docs",
    "notify": "notifications; docs at /docs",
    "console": "staff console: open it in a browser and sign in",
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
    "customer": {"email": "li.wei@example.com", "locale": "zh-CN"},
    "channel": "app",
}


def add(commands: Any) -> None:
    dev = commands.add_parser(
        "dev",
        help="run the whole stack locally until Ctrl-C",
        description="Start the broker, sandboxes (with an OpenID Provider), the four services "
        "and the staff console on 127.0.0.1; print where each listens and the demo sign-ins; "
        "stop them all on Ctrl-C.",
    )
    dev.add_argument("--data-dir", type=Path, default=Path("data"), help="default: %(default)s")
    dev.add_argument(
        "--no-providers",
        dest="providers",
        action="store_false",
        help="connect no provider accounts for the dev tenant: every payment method goes to "
        "the sandbox gateway (as before 0.4.0); the emulators still run",
    )
    dev.add_argument(
        "--postgres",
        metavar="URL",
        type=postgres_url,
        help="postgresql://user:pass@host:port/db instead of SQLite files",
    )
    dev.add_argument(
        "--schema-prefix",
        metavar="PREFIX",
        type=_schema_prefix,
        help="with --postgres: keep each service's store in schema PREFIX_<service> and the "
        "shared keystore in PREFIX_keystore (default: refunds), e.g. a fresh prefix for a "
        "throw-away stack beside another; the schemas are created if missing, never dropped",
    )
    dev.add_argument(
        "--base-port",
        dest="ports",
        metavar="N",
        type=_ports_from_base,
        help="services on N+1..N+4, console N+5, gateway N+10, SMTP N+25, SMS N+30, "
        "carrier N+40, identity provider N+50, Stripe/Alipay/WeChat Pay emulators N+60/70/80, "
        "broker N+92 (default: 8001-8005, 8010, 8025, 8030, 8040, 8050, 8060, 8070, 8080, 9092)",
    )
    dev.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="use this running Kafka broker instead of starting tansu (e.g. docker-compose's, "
        "or one kept across restarts of the stack, so nothing is published again)",
    )
    dev.add_argument(
        "--replicas",
        metavar="N",
        type=_replicas,
        default=1,
        help="run N processes of each of the four services, <service>-1 .. <service>-N, "
        "sharing the service's port (each also has a port of its own, printed); one of them "
        "leads each background role; one that dies is restarted (default: %(default)s)",
    )
    dev.set_defaults(handler=run_dev)


def _replicas(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_REPLICAS}, got {value!r}")
    return int(value)


def _schema_prefix(value: str) -> str:
    # PREFIX_keystore, the longest schema, must stay a plain PostgreSQL name (63 bytes at most).
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,53}", value):
        raise argparse.ArgumentTypeError(
            f"expected lower-case letters, digits and _ (at most 54, not starting with a "
            f"digit), got {value!r}"
        )
    return value


def _ports_from_base(value: str) -> Ports:
    try:
        return Ports.from_base(int(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_dev(args: argparse.Namespace) -> int:
    if args.schema_prefix is not None and args.postgres is None:
        print("refunds dev: --schema-prefix needs --postgres", file=sys.stderr)
        return EXIT_USAGE
    stack = Stack(
        args.data_dir,
        args.ports or Ports(),
        database_url=args.postgres,
        schema_prefix=args.schema_prefix,
        # The dev tenant's card, Alipay and WeChat Pay refunds go to the emulators.
        dev_providers=args.providers,
        inherited=os.environ,  # your REFUNDS_* settings, under the stack's own
        replicas=args.replicas,
        kafka=args.kafka,
    )
    for key, value in stack.overridden().items():
        print(f"refunds dev: {key} from your environment is replaced by the stack's ({value})")
    print(f"Starting the local stack (logs in {stack.data_dir / 'logs'}) ...", flush=True)
    with _stop_signals() as stop:
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
    """Wait for a stop signal (None) or for a component to die (its name and exit code).
    A replica that dies is started again while its siblings serve."""
    restarts: dict[str, int] = {}
    while stop.signum is None:
        exited = stack.exited()
        for name, code in exited.items():
            if not stack.fleet.is_replica(name) or restarts.get(name, 0) >= MAX_RESTARTS:
                return name, code
            restarts[name] = restarts.get(name, 0) + 1
            print(f"refunds dev: {name} {describe_exit(code)}; starting it again", flush=True)
            try:
                stack.start(name)
            except StackError:
                return name, code
        time.sleep(WATCH_SECONDS)
    return None


class _StopSignals:
    """SIGINT/SIGTERM: abort start-up with KeyboardInterrupt, afterwards only record the wish."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.interrupt = True

    def handle(self, signum: int, _: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        # Only the first signal interrupts, so a second Ctrl-C cannot break the orderly stop.
        if first and self.interrupt:
            raise KeyboardInterrupt


@contextmanager
def _stop_signals() -> Iterator[_StopSignals]:
    stop = _StopSignals()
    previous = {
        signum: signal.signal(signum, stop.handle) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def banner(stack: Stack) -> str:
    """Where each component listens, the dev credentials and a request to try."""
    rows = [("COMPONENT", "LISTENS ON", "WHAT")]
    for name in stack.components:
        where = stack.bootstrap if name == "broker" else stack.url(name)
        service = stack.fleet.service_of(name)
        if service is not None and name == stack.fleet.names(service)[0]:
            rows.append((service, stack.url(service), _DESCRIPTIONS[service]))
        if service is not None:
            what = f"replica of {service} (own port: /readyz, /metrics); REFUNDS_REPLICA={name}"
            rows.append((f"  {name}", where, what))
        else:
            rows.append((name, where, _DESCRIPTIONS[name]))
    table = "\n".join(aligned(rows, indent="  "))
    return "\n".join(
        [
            f"\nThe local stack is up (data in {stack.data_dir}).\n",
            table,
            "",
            *sign_ins(stack),
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


def sign_ins(stack: Stack) -> list[str]:
    """The console's address and the demo staff who can sign in (development only)."""
    if "console" in stack.components:
        heading = f"Staff console: {stack.url('console')}  (sign in as any of these; dev only)"
    else:
        heading = f"Demo staff at the identity provider {stack.url('identity')} (dev only)"
    rows = [("USER", "PASSWORD", "ROLE", "NAME")]
    rows += [(p.username, DEMO_PASSWORD, ", ".join(p.roles), p.name) for p in PEOPLE.values()]
    return [heading, *aligned(rows, indent="  ")]


def curl_example(intake_url: str, now: datetime | None = None) -> str:
    """The example refund as a curl command, its order paid four days and delivered two days
    before `now`: the policy's windows count from delivery, so fixed dates would age out."""
    now = now or datetime.now(UTC)
    order = {
        **EXAMPLE_REFUND["order"],
        "paid_at": (now - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "delivered_at": (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    example = {**EXAMPLE_REFUND, "order": order}
    body = shlex.quote(json.dumps(example, separators=(",", ":")))
    return " \\\n".join(
        [
            f"  curl -sS -X POST {intake_url}/v1/refunds",
            f"    -H 'Authorization: Bearer {DEV_API_KEY}'",
            "    -H 'Content-Type: application/json'",
            "    -H 'Idempotency-Key: demo-0001'",
            f"    -d {body}",
        ]
    )

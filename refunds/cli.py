"""The `refunds` command line: local stack, staff tokens, platform API keys, AsyncAPI file,
payout reconciliation, customer message templates."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlparse

from refunds.audit import add_audit
from refunds.devstack import COMPONENTS, Ports, Stack, StackError, describe_exit
from services.intake import tenants
from shared import staff_tokens as jwt
from shared.auth import DEV_API_KEY, DEV_TENANT, LOOKUP_TTL_SECONDS

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
WATCH_SECONDS = 0.2
DEFAULT_TTL_SECONDS = 3600

_DESCRIPTIONS = {
    "broker": "Kafka bootstrap (tansu, in memory)",
    "gateway": "sandbox payment gateway; ledger at /ledger",
    "mailsink": "SMTP mail sink; messages filed in <data>/mail",
    "sms": "sandbox SMS provider; messages at /v1/messages",
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
    "customer": {"email": "li.wei@example.com", "locale": "zh-CN"},
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
    _add_api_keys(commands)
    _add_asyncapi(commands)
    _add_payouts(commands)
    _add_notify(commands)
    add_audit(commands)
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
        help="services on N+1..N+4, gateway N+10, SMTP N+25, SMS N+30, broker N+92 "
        "(default: 8001-8004, 8010, 8025, 8030, 9092)",
    )
    dev.set_defaults(handler=run_dev)


def _postgres_url(value: str) -> str:
    if not re.match(r"^postgres(ql)?://", value):
        raise argparse.ArgumentTypeError(f"expected postgresql://..., got {value!r}")
    return value


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
    )
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


# -- refunds api-keys ----------------------------------------------------------------------------

_STORE_HELP = (
    "Keys live in intake's event store, configured as for intake: REFUNDS_DATABASE_URL "
    "(and REFUNDS_DATABASE_SCHEMA, default `intake`) for PostgreSQL, otherwise "
    "<REFUNDS_DATA_DIR>/intake.sqlite. Only each key's SHA-256 hash and its first "
    f"{tenants.PREFIX_LENGTH} characters are stored."
)


def _add_api_keys(commands: Any) -> None:
    api_keys = commands.add_parser(
        "api-keys",
        help="issue, list and revoke platform API keys",
        description="Manage the API keys platforms send as `Authorization: Bearer <key>`. "
        + _STORE_HELP,
    )
    actions = api_keys.add_subparsers(title="actions", metavar="ACTION", required=True)
    store = argparse.ArgumentParser(add_help=False)
    where = store.add_argument_group("store (overrides the environment)")
    where.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="folder of intake.sqlite (REFUNDS_DATA_DIR)"
    )
    where.add_argument(
        "--database-url",
        metavar="URL",
        type=_postgres_url,
        help="postgresql://user:pass@host:port/db (REFUNDS_DATABASE_URL)",
    )

    create = actions.add_parser(
        "create",
        parents=[store],
        help="issue a new key to a tenant and print it once",
        description="Issue a new API key to TENANT. The key is printed once, on stdout; "
        "only its hash is stored, so it cannot be shown again — copy it now.",
    )
    create.add_argument(
        "--tenant",
        required=True,
        type=_tenant_name,
        metavar="TENANT",
        help="2-63 characters of a-z, 0-9, _ and -, starting with a letter or digit",
    )
    create.add_argument(
        "--label", type=_label, default="", help="a note for people, e.g. where the key is used"
    )
    create.set_defaults(handler=run_api_keys_create)

    listing = actions.add_parser(
        "list",
        parents=[store],
        help="show the stored keys (prefixes, never keys)",
        description="List stored API keys, oldest first: prefix, tenant, label, "
        "when issued and when revoked.",
    )
    listing.add_argument(
        "--tenant", type=_tenant_name, metavar="TENANT", help="only this tenant's keys"
    )
    listing.set_defaults(handler=run_api_keys_list)

    revoke = actions.add_parser(
        "revoke",
        parents=[store],
        help="revoke a key for good",
        description="Revoke the key with this prefix. Running services stop accepting it "
        f"within {LOOKUP_TTL_SECONDS:g} seconds (their look-up cache). Revocation is final.",
    )
    revoke.add_argument(
        "prefix", metavar="PREFIX", help="the key's prefix as `list` shows it, or its SHA-256 hash"
    )
    revoke.add_argument("--reason", default="", help="why, for the record")
    revoke.set_defaults(handler=run_api_keys_revoke)


def _tenant_name(value: str) -> str:
    try:
        return tenants.check_tenant(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _label(value: str) -> str:
    if len(value.strip()) > tenants.MAX_LABEL_LENGTH:
        raise argparse.ArgumentTypeError(
            f"at most {tenants.MAX_LABEL_LENGTH} characters, got {len(value.strip())}"
        )
    return value.strip()


def run_api_keys_create(args: argparse.Namespace) -> int:
    with _intake_store(args) as (app, where):
        key = tenants.issue_key(app, args.tenant, label=args.label, actor=_actor())
    print(key, flush=True)
    print(
        f"Issued to tenant {args.tenant} in {where}. Only the key's SHA-256 hash is stored: "
        "copy the key now, it cannot be shown again.",
        file=sys.stderr,
    )
    return EXIT_OK


def run_api_keys_list(args: argparse.Namespace) -> int:
    with _intake_store(args) as (app, where):
        keys = tenants.list_keys(app, args.tenant)
    if not keys:
        whose = f" for tenant {args.tenant}" if args.tenant else ""
        print(f"No API keys{whose} in {where}.")
        return EXIT_OK
    rows = [("PREFIX", "TENANT", "CREATED", "REVOKED", "LABEL")]
    for key in keys:
        revoked = _when(key["revoked"]) if key["revoked"] else "-"
        rows.append((key["prefix"], key["tenant"], _when(key["created"]), revoked, key["label"]))
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    for prefix, tenant, created, revoked, label in rows:
        line = f"{prefix:<{w[0]}}  {tenant:<{w[1]}}  {created:<{w[2]}}  {revoked:<{w[3]}}  {label}"
        print(line.rstrip())
    return EXIT_OK


def run_api_keys_revoke(args: argparse.Namespace) -> int:
    with _intake_store(args) as (app, _):
        try:
            key = tenants.revoke_key(app, args.prefix, actor=_actor(), reason=args.reason)
        except tenants.UnknownApiKey as error:
            print(f"refunds api-keys revoke: {error}", file=sys.stderr)
            return EXIT_FAILED
    print(
        f"Revoked {key['prefix']} (tenant {key['tenant']}) at {_when(key['revoked'])}; "
        f"services refuse it within {LOOKUP_TTL_SECONDS:g} seconds."
    )
    return EXIT_OK


@contextmanager
def _intake_store(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """Intake's application over its configured store, and a description of where that is."""
    # Only these subcommands need the store; `refunds --help` stays quick.
    import psycopg
    from eventsourcing.persistence import PersistenceError

    from services.intake.application import IntakeApplication
    from services.intake.settings import IntakeSettings
    from shared.settings import load_settings
    from shared.store import store_env

    overrides = {
        name: value
        for name in ("data_dir", "database_url")
        if (value := getattr(args, name)) is not None
    }
    settings = load_settings(IntakeSettings, **overrides)
    if settings.database_url is None:
        where = f"SQLite {Path(settings.data_dir) / 'intake.sqlite'}"
    else:
        url = urlparse(settings.database_url)
        schema = settings.database_schema or "intake"
        where = f"PostgreSQL {url.hostname}:{url.port or 5432}{url.path}, schema {schema}"
    try:
        app = IntakeApplication(env=store_env(settings, "intake"))
        try:
            yield app, where
        finally:
            app.close()
    except (psycopg.Error, PersistenceError, OSError) as error:
        print(f"refunds api-keys: cannot use intake's store ({where}): {error}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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


# -- refunds payouts -----------------------------------------------------------------------------

PAYOUT_URL = "http://127.0.0.1:8003"
CLI_TOKEN_TTL_SECONDS = 300


def _add_payouts(commands: Any) -> None:
    payouts = commands.add_parser(
        "payouts",
        help="finance tasks against the payout service",
        description="Finance tasks against a running payout service's staff API.",
    )
    actions = payouts.add_subparsers(title="actions", metavar="ACTION", required=True)
    reconcile = actions.add_parser(
        "reconcile",
        help="reconcile the provider's settlement report of a day",
        description="Send the provider's settlement CSV for DAY to payout "
        "(POST /v1/reconciliations) and print its findings: one per report line "
        "(matched, missing_on_our_side, amount_differs, status_differs) and one per payout "
        "settled that day that the report does not list (missing_at_provider). The same "
        "file for the same day answers the report recorded the first time. "
        "Exit status: 0 all matched, 1 mismatches found, 2 usage or HTTP error.",
        epilog="example: refunds payouts reconcile settlement-2026-11-20.csv --day 2026-11-20",
    )
    reconcile.add_argument(
        "file", type=Path, metavar="FILE", help="the settlement CSV (header line first)"
    )
    reconcile.add_argument(
        "--day", required=True, type=_iso_day, metavar="YYYY-MM-DD", help="the settlement day"
    )
    reconcile.add_argument(
        "--url", default=PAYOUT_URL, type=_http_url, help="payout's base URL (default %(default)s)"
    )
    reconcile.add_argument(
        "--token",
        metavar="TOKEN",
        help="a staff JWT with the finance or admin role (default: a 5-minute finance token "
        f"for cli:<login> signed with ${jwt.SECRET_ENV}, or the dev secret in dev)",
    )
    reconcile.add_argument(
        "--json",
        action="store_true",
        help="JSON Lines: one object per finding, then one with the report's id and counts",
    )
    reconcile.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="default %(default)s"
    )
    reconcile.set_defaults(handler=run_payouts_reconcile)


def _iso_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/]", value):
        raise argparse.ArgumentTypeError(f"expected http(s)://host[:port], got {value!r}")
    return value.rstrip("/")


def run_payouts_reconcile(args: argparse.Namespace) -> int:
    import httpx  # only this subcommand talks HTTP

    where = "refunds payouts reconcile"
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"{where}: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token
    if token is None:
        try:
            secret = jwt.secret_from_env(os.environ)
        except LookupError as error:
            print(f"{where}: {error} (or pass --token)", file=sys.stderr)
            return EXIT_USAGE
        token = jwt.encode(jwt.staff_claims(_actor(), ["finance"], CLI_TOKEN_TTL_SECONDS), secret)
    try:
        response = httpx.post(
            f"{args.url}/v1/reconciliations",
            json={"day": args.day.isoformat(), "report": text},
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code not in (200, 201):
        print(f"{where}: {_problem_text(response)}", file=sys.stderr)
        return EXIT_USAGE
    report = response.json()
    if args.json:
        for finding in report["findings"]:
            print(json.dumps(finding, ensure_ascii=False))
        summary = {k: report[k] for k in ("id", "day", "counts", "mismatches")}
        print(json.dumps({**summary, "created": response.status_code == 201}))
    else:
        print(findings_table(report["findings"]))
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report["counts"].items()))
        again = "" if response.status_code == 201 else " (reconciled before: the same report)"
        print(f"\nReport {report['id']} for {report['day']}{again}: {counts or 'no lines'}.")
        print(f"{report['mismatches']} mismatch(es).")
    return EXIT_FAILED if report["mismatches"] else EXIT_OK


def findings_table(findings: list[dict[str, str]]) -> str:
    rows = [("KIND", "MERCHANT REFUND NO", "DETAIL")]
    rows += [(f["kind"], f["merchant_refund_no"], f["detail"]) for f in findings]
    w = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c}".rstrip() for a, b, c in rows)


def _problem_text(response: Any) -> str:
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


# -- refunds notify ------------------------------------------------------------------------------


def _add_notify(commands: Any) -> None:
    notify = commands.add_parser(
        "notify",
        help="customer message templates",
        description="Look at the customer message templates of the notify service.",
    )
    actions = notify.add_subparsers(title="actions", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render",
        help="render a step's template with sample data",
        description="Render the template of STEP in a locale and channel with built-in sample "
        "data and print the template's name and version, the subject (e-mail) or title "
        "(in_app) or the length and segments (sms), and the body. "
        "Exit status: 0 rendered, 2 unknown step, locale or channel.",
        epilog="example: refunds notify render rejected --locale en --html",
    )
    render.add_argument("step", metavar="STEP", help="received, approved, rejected, paid, ...")
    render.add_argument("--locale", required=True, help="zh-CN or en")
    render.add_argument(
        "--channel", default="email", help="email, sms or in_app (default: %(default)s)"
    )
    render.add_argument(
        "--html", action="store_true", help="print the HTML body instead of the plain text"
    )
    render.add_argument(
        "--again",
        action="store_true",
        help="a later occurrence of the step (a rejection after an appeal, a second evidence "
        "request)",
    )
    render.add_argument(
        "--why",
        choices=("appeal", "evidence"),
        help="in_review only: in review again after an appeal or the evidence asked for",
    )
    render.set_defaults(handler=run_notify_render)


def run_notify_render(args: argparse.Namespace) -> int:
    from services.notify.messages import templates  # only this subcommand needs Jinja2

    where = "refunds notify render"
    known = {
        "step": templates.STEPS,
        "locale": templates.LOCALES,
        "channel": templates.CHANNELS,
    }
    for what, value in (("step", args.step), ("locale", args.locale), ("channel", args.channel)):
        if value not in known[what]:
            print(
                f"{where}: unknown {what} {value!r}; known: {', '.join(known[what])}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if (args.step, args.channel, args.locale) not in templates.TEMPLATES:
        print(
            f"{where}: no {args.channel} template of {args.step} in {args.locale}", file=sys.stderr
        )
        return EXIT_USAGE
    if args.why is not None and args.step != "in_review":
        print(f"{where}: --why is for in_review only", file=sys.stderr)
        return EXIT_USAGE
    facts = dict(templates.SAMPLE_FACTS[args.step])
    if args.why is not None:
        facts.update(why=args.why, deadline=None)
    rendering = templates.render(
        f"{args.step}#2" if args.again else args.step,
        args.locale,
        facts,
        reference=templates.SAMPLE_REFERENCE,
        channel=args.channel,
    )
    if args.html and rendering.html is None:
        print(f"{where}: the {args.channel} channel has no HTML body", file=sys.stderr)
        return EXIT_USAGE
    print(f"Template: {rendering.template}")
    if args.channel == "sms":
        print(_sms_length(rendering.body))
        print()
        print(rendering.body)
        return EXIT_OK
    print(f"Subject: {rendering.subject}")
    print()
    body = rendering.html if args.html and rendering.html is not None else rendering.body
    print(body, end="" if body.endswith("\n") else "\n")
    return EXIT_OK


def _sms_length(text: str) -> str:
    from services.notify.messages.sms import measure

    length = measure(text)
    plural = "" if length.segments == 1 else "s"
    return f"Length: {len(text)} characters, {length.encoding}, {length.segments} segment{plural}"

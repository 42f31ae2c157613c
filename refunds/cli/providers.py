"""`refunds providers`: connect a tenant's own Stripe, Alipay or WeChat Pay merchant account
to payout, see what is connected, and disconnect it.

Credentials go to payout's admin API once and are sealed there; this command never prints
them, and what it reads back is only what identifies them (ids, key fingerprints).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from refunds.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_admin_call_options,
    add_group,
    aligned,
    problem_text,
    staff_token,
)

PAYOUT_URL = "http://127.0.0.1:8003"


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "providers",
        help="connect tenants' payment provider accounts (Stripe, Alipay, WeChat Pay)",
        description="Connect a tenant's own merchant account at a payment provider to a "
        "running payout service, list what is connected, or disconnect it. A tenant with no "
        "account for a payment method is paid through the default gateway.",
    )
    known = actions.add_parser("known", help="the providers and the fields each account needs")
    listing = actions.add_parser("list", help="a tenant's connected accounts (no secrets)")
    setting = actions.add_parser(
        "set",
        help="connect or rotate a tenant's account at PROVIDER",
        description="Credentials come from --file (JSON or YAML) and/or --set NAME=VALUE "
        "(NAME=@PATH reads the value from a file, e.g. a PEM key). Payout validates them "
        "(keys must parse, pairs must match) and refuses naming the field. Exit status: 0 "
        "connected, 2 refused or unreachable.",
        epilog="example: refunds providers set stripe --tenant acme "
        "--set secret_key=@stripe.key --set 'webhook_secrets=[\"whsec_…\"]'",
    )
    removing = actions.add_parser(
        "remove", help="disconnect a tenant's account (its credentials are shredded)"
    )
    for parser in (setting, removing):
        parser.add_argument("provider", metavar="PROVIDER", help="stripe, alipay or wechatpay")
    for parser in (listing, setting, removing):
        parser.add_argument("--tenant", required=True, help="the tenant (platform) whose account")
    setting.add_argument("--file", type=Path, metavar="FILE", help="credentials, JSON or YAML")
    setting.add_argument(
        "--set",
        dest="fields",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one credential field (NAME=@PATH reads a file; a JSON list or object is parsed)",
    )
    for parser in (known, listing, setting, removing):
        add_admin_call_options(parser, "payout", PAYOUT_URL)
    known.set_defaults(handler=run_known)
    listing.set_defaults(handler=run_list)
    setting.set_defaults(handler=run_set)
    removing.set_defaults(handler=run_remove)


def credentials(file: Path | None, fields: list[str]) -> dict[str, Any]:
    """The account's fields from FILE and NAME=VALUE pairs; ValueError says which is wrong."""
    found: dict[str, Any] = {}
    if file is not None:
        import yaml

        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{file} holds no mapping of field names to values")
        found.update(loaded)
    for pair in fields:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE")
        if value.startswith("@"):
            value = Path(value[1:]).read_text(encoding="utf-8")
        elif value[:1] in "[{":
            value = json.loads(value)
        found[name] = value
    return found


def run_known(args: argparse.Namespace) -> int:
    answer = _call(args, "GET", "/v1/admin/providers", "refunds providers known")
    if answer is None:
        return EXIT_USAGE
    if not args.json:
        rows = [("PROVIDER", "METHODS", "FIELDS (* required)")]
        for provider in answer["data"]:
            schema = provider["account_schema"]
            required = set(schema.get("required", []))
            names = [f"{n}*" if n in required else n for n in schema.get("properties", {})]
            rows.append((provider["name"], ",".join(provider["methods"]), " ".join(names)))
        print("\n".join(aligned(rows)))
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    path = f"/v1/admin/tenants/{args.tenant}/providers"
    answer = _call(args, "GET", path, "refunds providers list")
    if answer is None:
        return EXIT_USAGE
    if not args.json:
        rows = [("PROVIDER", "METHODS", "STATE", "BY", "AT", "IDENTIFIED BY")]
        for account in answer["data"]:
            state = "connected" if account["active"] else "removed"
            facts = ", ".join(f"{k}={v}" for k, v in account["summary"].items())
            rows.append(
                (
                    account["provider"],
                    ",".join(account["methods"]),
                    state,
                    account["configured_by"],
                    str(account["configured_at"]),
                    facts,
                )
            )
        print("\n".join(aligned(rows)))
    return EXIT_OK


def run_set(args: argparse.Namespace) -> int:
    where = "refunds providers set"
    try:
        body = credentials(args.file, args.fields)
    except (OSError, ValueError) as error:  # yaml's and json's errors are ValueErrors
        print(f"{where}: {error}", file=sys.stderr)
        return EXIT_USAGE
    path = f"/v1/admin/tenants/{args.tenant}/providers/{args.provider}"
    answer = _call(args, "PUT", path, where, body)
    if answer is None:
        return EXIT_USAGE
    if not args.json:
        facts = ", ".join(f"{k}={v}" for k, v in answer["summary"].items())
        print(f"Connected {args.tenant}'s {args.provider} account ({facts}).")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    path = f"/v1/admin/tenants/{args.tenant}/providers/{args.provider}"
    answer = _call(args, "DELETE", path, "refunds providers remove")
    if answer is None:
        return EXIT_USAGE
    if not args.json:
        print(f"Disconnected {args.tenant}'s {args.provider} account; its credentials are gone.")
    return EXIT_OK


def _call(
    args: argparse.Namespace, method: str, path: str, where: str, body: Any = None
) -> dict[str, Any] | None:
    """Payout's answer (printed as JSON with --json), or None after saying what went wrong."""
    import httpx  # only the commands that talk HTTP load it

    token = args.token or staff_token("admin", where)
    if token is None:
        return None
    try:
        response = httpx.request(
            method,
            f"{args.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return None
    if response.status_code not in (200, 201):
        print(f"{where}: {problem_text(response)}", file=sys.stderr)
        return None
    answer: dict[str, Any] = response.json()
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    return answer

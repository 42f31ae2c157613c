"""`refunds payouts reconcile`: a provider's settlement report, checked by payout;
`refunds payouts abnormal-refund`: WeChat Pay re-routes a refund it could not credit."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from refunds.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_group,
    aligned,
    http_url,
    problem_text,
    staff_token,
)
from shared import staff_tokens as jwt

PAYOUT_URL = "http://127.0.0.1:8003"


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "payouts",
        help="finance tasks against the payout service",
        description="Finance tasks against a running payout service's staff API.",
    )
    reconcile = actions.add_parser(
        "reconcile",
        help="reconcile the provider's settlement report of a day",
        description="Send the provider's settlement CSV for DAY to payout "
        "(POST /v1/reconciliations) and print its findings: one per report line "
        "(matched, missing_on_our_side, amount_differs, status_differs) and one per payout "
        "settled that day that the report does not list (missing_at_provider). The same "
        "file for the same day answers the report recorded the first time. "
        "With --fetch, payout fetches the tenant's own bill from the provider itself "
        "(POST /v1/reconciliations/fetch) instead of FILE. "
        "Exit status: 0 all matched, 1 mismatches found, 2 usage or HTTP error.",
        epilog="examples: refunds payouts reconcile settlement-2026-11-20.csv --day 2026-11-20; "
        "refunds payouts reconcile --fetch alipay --tenant acme --day 2026-11-20",
    )
    reconcile.add_argument(
        "file",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="the settlement CSV (header line first); leave out with --fetch",
    )
    reconcile.add_argument(
        "--fetch",
        choices=("stripe", "alipay", "wechatpay"),
        metavar="PROVIDER",
        help="have payout fetch the bill from the tenant's account at PROVIDER "
        "(stripe, alipay or wechatpay)",
    )
    reconcile.add_argument(
        "--tenant", metavar="TENANT", help="whose account the bill is of (with --fetch)"
    )
    reconcile.add_argument(
        "--day", required=True, type=_iso_day, metavar="YYYY-MM-DD", help="the settlement day"
    )
    reconcile.add_argument(
        "--url", default=PAYOUT_URL, type=http_url, help="payout's base URL (default %(default)s)"
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
    add_abnormal_refund(actions)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=PAYOUT_URL, type=http_url, help="payout's base URL (default %(default)s)"
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="a staff JWT with the finance or admin role (default: a 5-minute finance token "
        f"for cli:<login> signed with ${jwt.SECRET_ENV}, or the dev secret in dev)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="default %(default)s"
    )


def add_abnormal_refund(actions: Any) -> None:
    abnormal = actions.add_parser(
        "abnormal-refund",
        help="have WeChat Pay credit an ABNORMAL refund to a bank card",
        description="For a payout whose WeChat Pay refund ended ABNORMAL (the payer's "
        "account could not take it): POST /v1/payouts/PAYOUT/abnormal-refund. "
        "MERCHANT_BANK_CARD credits the merchant's card (finance then pays the customer); "
        "USER_BANK_CARD the payer's, given --bank-type and the card's number and holder, "
        "read from standard input (two lines) or asked for on a terminal, never from the "
        "command line. Payout records only the last four digits. "
        "Exit status: 0 paid, 1 not paid (yet), 2 usage or HTTP error.",
        epilog="example: refunds payouts abnormal-refund po_… --type MERCHANT_BANK_CARD",
    )
    abnormal.add_argument("payout", metavar="PAYOUT", help="the payout's id, po_…")
    abnormal.add_argument("--type", required=True, choices=("USER_BANK_CARD", "MERCHANT_BANK_CARD"))
    abnormal.add_argument(
        "--bank-type",
        metavar="BANK",
        help="WeChat Pay's bank type (USER_BANK_CARD), e.g. ICBC_DEBIT",
    )
    abnormal.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="repeat a request safely (default: a new one per run)",
    )
    _common(abnormal)
    abnormal.set_defaults(handler=run_abnormal_refund)


def _card(where: str) -> tuple[str, str] | None:
    """The payer's card number and holder: stdin's two lines, or asked for on a terminal."""
    if sys.stdin.isatty():
        account = getpass.getpass("card number: ").strip()
        name = input("card holder: ").strip()
    else:
        lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
        if len(lines) != 2:
            print(f"{where}: give the card number and holder on two lines", file=sys.stderr)
            return None
        account, name = lines
    return account, name


def run_abnormal_refund(args: argparse.Namespace) -> int:
    import httpx  # only the HTTP subcommands need it

    where = "refunds payouts abnormal-refund"
    body: dict[str, str] = {"type": args.type}
    if args.type == "USER_BANK_CARD":
        if not args.bank_type:
            print(f"{where}: USER_BANK_CARD needs --bank-type", file=sys.stderr)
            return EXIT_USAGE
        card = _card(where)
        if card is None:
            return EXIT_USAGE
        body |= {"bank_type": args.bank_type, "bank_account": card[0], "real_name": card[1]}
    elif args.bank_type:
        print(f"{where}: --bank-type is only for USER_BANK_CARD", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or staff_token("finance", where)
    if token is None:
        return EXIT_USAGE
    headers = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": args.idempotency_key or str(uuid.uuid4()),
    }
    try:
        response = httpx.post(
            f"{args.url}/v1/payouts/{args.payout}/abnormal-refund",
            json=body,
            headers=headers,
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code != 200:
        print(f"{where}: {problem_text(response)}", file=sys.stderr)
        return EXIT_USAGE
    payout = response.json()
    outcome = payout.get("outcome") or {}
    detail = f" ({outcome['cause']})" if payout["status"] == "failed" and "cause" in outcome else ""
    print(f"{payout['id']}: {payout['status']}{detail}")
    return EXIT_OK if payout["status"] == "paid" else EXIT_FAILED


def _iso_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def run_payouts_reconcile(args: argparse.Namespace) -> int:
    import httpx  # only this subcommand talks HTTP

    where = "refunds payouts reconcile"
    if (args.file is None) == (args.fetch is None) or (args.fetch is None) != (args.tenant is None):
        print(f"{where}: give FILE, or --fetch PROVIDER with --tenant TENANT", file=sys.stderr)
        return EXIT_USAGE
    path, body = "/v1/reconciliations", {"day": args.day.isoformat()}
    if args.fetch is not None:
        path, body = path + "/fetch", {**body, "provider": args.fetch, "tenant": args.tenant}
    else:
        try:
            body["report"] = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            print(f"{where}: cannot read {args.file}: {error}", file=sys.stderr)
            return EXIT_USAGE
    token = args.token or staff_token("finance", where)
    if token is None:
        return EXIT_USAGE
    try:
        response = httpx.post(
            f"{args.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code not in (200, 201):
        print(f"{where}: {problem_text(response)}", file=sys.stderr)
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
    return "\n".join(aligned(rows))

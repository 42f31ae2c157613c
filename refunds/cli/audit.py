"""`refunds audit …`: verify the ledgers, tell one refund's story, rebuild read models, export.

These commands read the services' stores directly (an auditor's or operator's
tool, run where the databases are reachable), so they work whether or not the
services run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, TextIO

from refunds.cli.common import EXIT_FAILED, EXIT_OK, add_group, aligned
from refunds.stores import (
    Stores,
    add_store_options,
    correlate,
    open_service,
    read_models,
    stores_from,
)
from shared.contracts import SERVICES

EXPORT_FIELDS = (
    "service",
    "position",
    "time",
    "type",
    "aggregate_id",
    "aggregate_version",
    "actor",
    "via",
    "causation_id",
    "correlation_id",
    "event_id",
    "hash",
    "leaf_hash",
    "data",
)


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "audit",
        help="verify the ledgers, show a refund's timeline, rebuild read models, export",
        description="Auditors' tools over the four services' stores.",
    )

    verify = actions.add_parser(
        "verify",
        help="recompute every hash chain and checkpoint; report any altered, deleted, "
        "inserted or reordered event",
        description="Exit status 1 when anything does not verify.",
    )
    _services_option(verify)
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="SERVICE=BASE64",
        help="a service's published Ed25519 public key (default: the public dev keys, "
        "which production never uses)",
    )
    verify.add_argument(
        "--checkpoints",
        type=argparse.FileType("r"),
        help="JSON Lines of checkpoints published earlier (`refunds audit checkpoints`); "
        "each must still be in the store",
    )
    verify.add_argument("--seal", action="store_true", help="seal unsealed events first")
    add_store_options(verify)
    verify.set_defaults(handler=run_verify)

    timeline = actions.add_parser(
        "timeline",
        help="one refund's story across the four services, in causal order",
    )
    timeline.add_argument("refund_id", help="e.g. rf_5b0e2f0c9a1e4c558d7e3c1f6c2d9a10")
    timeline.add_argument("--format", choices=("table", "jsonl"), default="table")
    add_store_options(timeline)
    timeline.set_defaults(handler=run_timeline)

    rebuild = actions.add_parser(
        "rebuild",
        help="replay every event into fresh read models and compare them with the live ones",
        description="Exit status 1 when a rebuilt read model differs from the live one.",
    )
    _services_option(rebuild)
    add_store_options(rebuild)
    rebuild.set_defaults(handler=run_rebuild)

    export = actions.add_parser(
        "export", help="a range of one service's ledger as JSON Lines or CSV"
    )
    export.add_argument("service", choices=SERVICES)
    export.add_argument("--after", type=int, default=0, help="start after this log position")
    export.add_argument("--until", type=int, default=None, help="stop at this log position")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument(
        "--output", type=argparse.FileType("w"), default=sys.stdout, help="default: stdout"
    )
    add_store_options(export)
    export.set_defaults(handler=run_export)

    checkpoints = actions.add_parser(
        "checkpoints",
        help="sign each ledger's head now and print every checkpoint as JSON Lines to keep",
    )
    _services_option(checkpoints)
    checkpoints.add_argument(
        "--signing-key",
        action="append",
        default=[],
        metavar="SERVICE=BASE64",
        help="sign with the service's key (default: only print the checkpoints it made)",
    )
    add_store_options(checkpoints)
    checkpoints.set_defaults(handler=run_checkpoints)


def _services_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        dest="services",
        help="only this service (repeatable; default: all four)",
    )


def _chosen(args: argparse.Namespace) -> list[str]:
    return list(args.services or SERVICES)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        service, sep, key = value.partition("=")
        if not sep or service not in SERVICES:
            raise SystemExit(f"refunds audit: {what} must look like SERVICE=BASE64, got {value!r}")
        pairs[service] = key
    return pairs


def _ledger(app: Any, service: str, seed: str | None = None) -> Any:
    from shared.ledger import Ledger
    from shared.signing import Signer

    signer = Signer(seed) if seed else None
    return Ledger(app, signer=signer, correlate=correlate(service))


# -- verify ------------------------------------------------------------------------------------


def run_verify(args: argparse.Namespace) -> int:
    from shared.ledger import Checkpoint
    from shared.ledger_verify import verify_ledger
    from shared.signing import Signer, dev_seed

    stores = stores_from(args)
    keys = _pairs(args.public_key, "--public-key")
    published = [Checkpoint(**json.loads(line)) for line in args.checkpoints or [] if line.strip()]
    failed = False
    for service in _chosen(args):
        key = keys.get(service) or Signer(dev_seed(service)).public_key
        with open_service(stores, service) as app:
            ledger = _ledger(app, service)
            if args.seal:
                ledger.seal()
            report = verify_ledger(ledger, key, published)
        status = "ok" if report.ok else "FAILED"
        print(
            f"{service:<7} {status:<6} {report.events} events, {report.sealed} sealed, "
            f"{report.unsealed} not yet sealed, {report.verified_checkpoints}/"
            f"{report.checkpoints} checkpoints verified, signed through position "
            f"{report.signed_through}  ({stores.describe(service)})"
        )
        for finding in report.findings:
            where = f"position {finding.position}" if finding.position is not None else "-"
            print(f"  {finding.kind:<19} {where:<16} {finding.detail}")
        failed = failed or not report.ok
    return EXIT_FAILED if failed else EXIT_OK


# -- timeline ----------------------------------------------------------------------------------


def story(stores: Stores, refund_id: str) -> list[Any]:
    """The refund's moments from all four ledgers, in causal order."""
    from shared.audit_api import with_data
    from shared.timeline import moment, ordered

    moments = []
    for service in SERVICES:
        with open_service(stores, service) as app:
            ledger = _ledger(app, service)
            ledger.seal()
            for entry in with_data(ledger, ledger.for_refund(refund_id)):
                moments.append(moment(service, entry.model_dump()))
    return ordered(moments)


def run_timeline(args: argparse.Namespace) -> int:
    moments = story(stores_from(args), args.refund_id)
    if not moments:
        print(f"refunds audit: no events about {args.refund_id}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "jsonl":
        for item in moments:
            print(json.dumps(asdict(item), ensure_ascii=False, sort_keys=True))
        return EXIT_OK
    print(timeline_table(moments))
    return EXIT_OK


def timeline_table(moments: list[Any]) -> str:
    rows = [("time", "service", "event", "actor", "facts")]
    for item in moments:
        facts = ", ".join(f"{k}={_fact(v)}" for k, v in item.summary.items())
        rows.append((item.time[:23].replace("T", " "), item.service, item.type, item.actor, facts))
    return "\n".join(aligned(rows))


def _fact(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return f"{value['currency']} {value['amount']}"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- rebuild -----------------------------------------------------------------------------------


def run_rebuild(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from shared.rebuild import rebuild_and_compare

    stores = stores_from(args)
    failed = False
    results = []
    for service in _chosen(args):
        with open_service(stores, service) as app:
            total = int(app.recorder.max_notification_id() or 0)
            for model in read_models(service):
                with tqdm(
                    total=total, unit="ev", desc=f"{service}/{model.name}", file=sys.stderr
                ) as bar:
                    result = rebuild_and_compare(app, model, bar.update)
                results.append(result)
                failed = failed or bool(result.differences)
    # `log`: events the rebuild went over; `read`: the model's own, the ones it applied.
    print(f"{'read model':<36} {'log':>8} {'read':>8} {'rows':>7} {'log ev/s':>10}  differences")
    for result in results:
        name = f"{result.service}/{result.model}"
        print(
            f"{name:<36} {result.logged:>8} {result.events:>8} {result.rows:>7} "
            f"{result.rate:>10,.0f}  {len(result.differences)}"
        )
        for difference in result.differences[:20]:
            print(
                f"  {difference.kind:<9} {difference.key}: live {difference.live} "
                f"rebuilt {difference.rebuilt}"
            )
    return EXIT_FAILED if failed else EXIT_OK


# -- export ------------------------------------------------------------------------------------


def export_rows(
    stores: Stores, service: str, after: int, until: int | None
) -> Iterator[dict[str, Any]]:
    from shared.audit_api import with_data

    with open_service(stores, service) as app:
        ledger = _ledger(app, service)
        ledger.seal()
        while entries := ledger.entries(after=after, limit=500):
            for entry in with_data(ledger, entries):
                if until is not None and entry.position > until:
                    return
                yield {"service": service, **entry.model_dump()}
            after = entries[-1].position


def run_export(args: argparse.Namespace) -> int:
    rows = export_rows(stores_from(args), args.service, args.after, args.until)
    write_export(rows, args.format, args.output)
    return EXIT_OK


def write_export(rows: Iterator[dict[str, Any]], form: str, out: TextIO) -> None:
    if form == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {**row, "data": json.dumps(row["data"], ensure_ascii=False, sort_keys=True)}
        )


# -- checkpoints -------------------------------------------------------------------------------


def run_checkpoints(args: argparse.Namespace) -> int:
    stores = stores_from(args)
    seeds = _pairs(args.signing_key, "--signing-key")
    for service in _chosen(args):
        with open_service(stores, service) as app:
            ledger = _ledger(app, service, seeds.get(service))
            if ledger.signer is not None:
                ledger.checkpoint()
            for checkpoint in ledger.checkpoints():
                print(json.dumps(asdict(checkpoint), sort_keys=True))
    return EXIT_OK

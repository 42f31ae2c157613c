"""`refunds api-keys`: issue, list and revoke platform API keys in intake's store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from refunds.cli.common import EXIT_FAILED, EXIT_OK, actor, add_group, aligned, postgres_url
from services.intake import key_index, tenants
from shared.auth import LOOKUP_TTL_SECONDS

_STORE_HELP = (
    "Keys live in intake's event store, configured as for intake: REFUNDS_DATABASE_URL "
    "(and REFUNDS_DATABASE_SCHEMA, default `intake`) for PostgreSQL, otherwise "
    "<REFUNDS_DATA_DIR>/intake.sqlite. Only each key's SHA-256 hash and its first "
    f"{tenants.PREFIX_LENGTH} characters are stored."
)


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "api-keys",
        help="issue, list and revoke platform API keys",
        description="Manage the API keys platforms send as `Authorization: Bearer <key>`. "
        + _STORE_HELP,
    )
    store = argparse.ArgumentParser(add_help=False)
    where = store.add_argument_group("store (overrides the environment)")
    where.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="folder of intake.sqlite (REFUNDS_DATA_DIR)"
    )
    where.add_argument(
        "--database-url",
        metavar="URL",
        type=postgres_url,
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
        key = tenants.issue_key(app, args.tenant, label=args.label, actor=actor())
    print(key, flush=True)
    print(
        f"Issued to tenant {args.tenant} in {where}. Only the key's SHA-256 hash is stored: "
        "copy the key now, it cannot be shown again.",
        file=sys.stderr,
    )
    return EXIT_OK


def run_api_keys_list(args: argparse.Namespace) -> int:
    with _intake_store(args) as (app, where):
        keys = key_index.list_keys(app, args.tenant)
    if not keys:
        whose = f" for tenant {args.tenant}" if args.tenant else ""
        print(f"No API keys{whose} in {where}.")
        return EXIT_OK
    rows = [("PREFIX", "TENANT", "CREATED", "REVOKED", "LABEL")]
    for key in keys:
        revoked = _when(key["revoked"]) if key["revoked"] else "-"
        rows.append((key["prefix"], key["tenant"], _when(key["created"]), revoked, key["label"]))
    for line in aligned(rows):
        print(line)
    return EXIT_OK


def run_api_keys_revoke(args: argparse.Namespace) -> int:
    with _intake_store(args) as (app, _):
        try:
            key = key_index.revoke_key(app, args.prefix, actor=actor(), reason=args.reason)
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


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

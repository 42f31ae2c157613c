"""Where the four services keep their stores, for the operator commands that read them."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Stores:
    data_dir: Path
    database_url: str | None
    schema_prefix: str | None

    def schema(self, service: str) -> str:
        return f"{self.schema_prefix}_{service}" if self.schema_prefix else service

    def describe(self, service: str) -> str:
        if self.database_url is None:
            return f"SQLite {self.data_dir / f'{service}.sqlite'}"
        return f"PostgreSQL schema {self.schema(service)}"


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="folder of the SQLite stores"
    )
    parser.add_argument(
        "--database-url", default=None, help="postgresql://… — read PostgreSQL instead of SQLite"
    )
    parser.add_argument(
        "--schema-prefix",
        default=None,
        help="schemas are <prefix>_<service> (as `refunds dev --postgres` makes them); "
        "default: the service name",
    )


def stores_from(args: argparse.Namespace) -> Stores:
    return Stores(args.data_dir, args.database_url, args.schema_prefix)


@contextmanager
def open_service(stores: Stores, service: str) -> Iterator[Any]:
    """The service's application over its store (created empty if it does not exist)."""
    from shared.settings import ServiceSettings
    from shared.store import store_env

    settings = ServiceSettings.model_validate(
        {
            "data_dir": stores.data_dir,
            "database_url": stores.database_url,
            "database_schema": stores.schema(service) if stores.database_url else None,
            # A tool reads one service at a time: it needs few of the server's connections.
            "database_pool_size": 1,
            "database_max_overflow": 2,
        }
    )
    app = _application(service, store_env(settings, service))
    try:
        yield app
    finally:
        app.close()


def _application(service: str, env: dict[str, str]) -> Any:
    if service == "intake":
        from services.intake.application import IntakeApplication

        return IntakeApplication(env=env)
    if service == "review":
        from services.review.application import ReviewApplication
        from services.review.policy_document import default_policy

        return ReviewApplication(default_policy(), env=env)
    if service == "payout":
        from services.payout.application import PayoutApplication

        return PayoutApplication(env=env)
    from services.notify.application import NotifyApplication

    return NotifyApplication(env=env)


def read_models(service: str) -> list[Any]:
    """The read-model classes of `service`, each rebuilt from its log on demand."""
    if service == "intake":
        from services.intake.analytics import RefundFacts
        from services.intake.index import RefundIndex
        from services.intake.key_index import ApiKeyIndex
        from services.intake.return_analytics import ReturnFacts

        return [RefundIndex, RefundFacts, ReturnFacts, ApiKeyIndex]
    if service == "review":
        from services.review.queue import ReviewQueue

        return [ReviewQueue]
    if service == "payout":
        from services.payout.index import PayoutIndex, ReconciliationIndex
        from services.payout.settled_days import SettledDays

        return [PayoutIndex, ReconciliationIndex, SettledDays]
    from services.notify.messages.feed import CustomerFeed
    from services.notify.platform_keys import PlatformKeyIndex
    from services.notify.webhooks.index import DeliveryIndex, EndpointIndex

    return [CustomerFeed, EndpointIndex, DeliveryIndex, PlatformKeyIndex]


def correlate(service: str) -> Any:
    if service == "intake":
        from services.intake.audit import refund_of

        return refund_of
    return None

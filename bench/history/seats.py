"""The four services' applications over a stack's stores, as the pipeline drives them: each
with its relay's mapping and the topics its consumer reads (services/*/bootstrap.py), and one
keystore shared by those that seal or open personal data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bench.history.pipeline import Seat
from refunds.stores import Stores, open_service
from shared.keystore import open_keystore
from shared.settings import KeystoreSettings

# Who consumes whom, as services/*/bootstrap.py wire it.
CONSUMES = {
    "intake": ("review", "payout"),
    "review": ("intake",),
    "payout": ("review", "intake"),
    "notify": ("intake", "review", "payout"),
}


def mappings() -> dict[str, object]:
    from services.intake.publishing import to_integration as intake
    from services.notify.messages.application import to_integration as notify
    from services.payout.publishing import to_integration as payout
    from services.review.publishing import to_integration as review

    return {"intake": intake, "review": review, "payout": payout, "notify": notify}


@contextmanager
def open_seats(stores: Stores, *, record_policy: bool = False) -> Iterator[dict[str, Seat]]:
    with ExitStack() as stack:
        settings = KeystoreSettings(
            data_dir=stores.data_dir,
            database_url=stores.database_url,
            database_schema=stores.schema("intake") if stores.database_url else None,
        )
        keys = open_keystore(settings, "intake")
        stack.callback(keys.close)
        seats = {}
        mapped = mappings()
        for service, consumes in CONSUMES.items():
            app = stack.enter_context(open_service(stores, service))
            if service in ("intake", "review", "notify"):
                app.keystore = keys
                # The keystore is closed once, after every application.
                stack.callback(setattr, app, "keystore", None)
            # Only what is stored from now on is published: older history was, by its stack.
            published = int(app.recorder.max_notification_id() or 0)
            if service == "review" and record_policy:
                app.record_shipped_policy()  # as review does when it starts
            seats[service] = Seat(service, app, mapped[service], consumes, published, published)  # type: ignore[arg-type]
        yield seats

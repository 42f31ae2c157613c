"""`refunds api-keys list|revoke` and the start-up announcement read intake's keys from a read
model: after thousands of unrelated events they read none of them, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.intake.application import IntakeApplication
from services.intake.key_index import ApiKeyIndex, announce_keys, list_keys, revoke_key
from services.intake.settings import IntakeSettings
from services.intake.tenants import issue_key
from shared.follower import TAIL
from shared.store import store_env
from tests.integration.test_log_reads import Reads, _noise


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IntakeApplication]:
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        settings = IntakeSettings(
            database_url=request.getfixturevalue("postgres_url"),
            database_schema=f"{prefix}_intake",
            relay_enabled=False,
        )
    else:
        settings = IntakeSettings(data_dir=tmp_path, relay_enabled=False)
    application = IntakeApplication(env=store_env(settings, "intake"))
    yield application
    application.close()


def test_keys_are_listed_revoked_and_announced_without_reading_the_history_again(
    app: IntakeApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = issue_key(app, "acme", label="shop", actor="cli:ops")
    gone = issue_key(app, "globex", actor="cli:ops")
    revoke_key(app, gone[:12], actor="cli:sec", reason="leaked")
    listed = list_keys(app)
    assert [(k["prefix"], k["revoked"] is None) for k in listed] == [
        (kept[:12], True),
        (gone[:12], False),
    ]
    before = int(app.recorder.max_notification_id() or 0)
    end = _noise(app)  # thousands of events of another aggregate

    reads = Reads(app, monkeypatch)
    assert list_keys(app) == listed
    assert list_keys(app, "acme") == listed[:1]
    assert announce_keys(app) == 0
    # Neither the keys' events again nor the unrelated ones: only the log's tail, once (one
    # query's worth, `shared.follower.TAIL`; the thousands before it are passed over in SQL).
    assert reads.rows == TAIL
    assert app.positions.load(ApiKeyIndex.name) == end

    revoked = revoke_key(app, kept[:12], actor="cli:sec", reason="rotated")
    assert reads.rows == TAIL  # the prefix was found in the read model
    assert [k["revoked"] for k in list_keys(app)] == [revoked["revoked"], listed[1]["revoked"]]
    assert reads.rows == TAIL + 1  # the revocation, and only it
    # Every read began after the keys' history: at the noise (its tail), then after its end.
    assert all(start is not None and start >= before for start in reads.starts)
    assert reads.starts[-1] >= end

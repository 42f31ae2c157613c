"""The keystore of per-customer keys, on both backends it claims (SQLite and PostgreSQL):
sealing, field binding, erasure, generations after erasure, the master key, the cache bound."""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.keystore import (
    DEV_MASTER_KEY,
    ERASED,
    PREFIX,
    KeyErased,
    Keystore,
    MasterKeyMismatch,
    SealedValueInvalid,
    key_id_of,
    keystore_location,
    open_keystore,
)
from shared.settings import KeystoreSettings

ALICE = ("acme", "C-alice")
BOB = ("acme", "C-bob")
EMAIL = "customer.email"
OTHER_MASTER_KEY = base64.b64encode(b"another-master-key-of-32-bytes!!").decode()


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> KeystoreSettings:
    if request.param == "sqlite":
        return KeystoreSettings(env="test", data_dir=tmp_path)
    prefix = request.getfixturevalue("schema_prefix")
    return KeystoreSettings(
        env="test",
        data_dir=tmp_path,
        database_url=request.getfixturevalue("postgres_url"),
        database_schema=f"{prefix}_intake",
    )


@pytest.fixture
def keystore(settings: KeystoreSettings) -> Iterator[Keystore]:
    opened = open_keystore(settings, "intake")
    yield opened
    opened.close()


def test_a_sealed_value_opens_to_its_plaintext_and_shows_none_of_it(keystore: Keystore) -> None:
    sealed = keystore.seal(ALICE, "alice@example.com", field=EMAIL)
    assert sealed.startswith(PREFIX) and "alice" not in sealed
    assert keystore.unseal(sealed, field=EMAIL) == "alice@example.com"
    # A fresh nonce each time: equal plaintexts do not give equal sealed values.
    assert keystore.seal(ALICE, "alice@example.com", field=EMAIL) != sealed
    assert key_id_of(sealed) == keystore.current_key(ALICE)


def test_a_value_opens_only_as_its_own_field_and_untampered(keystore: Keystore) -> None:
    sealed = keystore.seal(ALICE, "+8613800000000", field="customer.phone")
    with pytest.raises(SealedValueInvalid):
        keystore.unseal(sealed, field=EMAIL)  # the associated data names the field
    head, _, body = sealed.rpartition(":")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SealedValueInvalid):
        keystore.unseal(f"{head}:{flipped}", field="customer.phone")
    bobs = keystore.current_key(BOB)
    with pytest.raises(SealedValueInvalid):  # under another key id (AAD binds the key id)
        keystore.unseal(sealed.replace(str(key_id_of(sealed)), bobs), field="customer.phone")
    with pytest.raises(SealedValueInvalid):
        keystore.unseal("alice@example.com", field=EMAIL)


def test_erasure_makes_the_customers_values_unreadable_and_no_one_elses(
    keystore: Keystore,
) -> None:
    alices = keystore.seal(ALICE, "alice@example.com", field=EMAIL)
    bobs = keystore.seal(BOB, "bob@example.com", field=EMAIL)
    tombstones = keystore.erase(ALICE, by="staff:ann")
    assert [t.key_id for t in tombstones] == [key_id_of(alices)]
    assert tombstones[0].erased_by == "staff:ann" and tombstones[0].erased_at
    assert keystore.unseal(alices, field=EMAIL) is None
    assert keystore.reveal(alices, field=EMAIL) is None
    assert keystore.show(alices, field=EMAIL) == ERASED
    assert keystore.is_erased(str(key_id_of(alices)))
    with pytest.raises(KeyErased):
        keystore.seal_with(str(key_id_of(alices)), "more", field=EMAIL)
    assert keystore.unseal(bobs, field=EMAIL) == "bob@example.com"
    # Erasing again shreds nothing new.
    assert keystore.erase(ALICE, by="staff:ann") == tombstones


def test_a_customer_who_comes_back_gets_a_new_generation(keystore: Keystore) -> None:
    before = keystore.seal(ALICE, "old@example.com", field=EMAIL)
    keystore.erase(ALICE, by="staff:ann")
    after = keystore.seal(ALICE, "new@example.com", field=EMAIL)
    old_key, new_key = str(key_id_of(before)), str(key_id_of(after))
    assert old_key.endswith("_g1") and new_key.endswith("_g2")
    assert keystore.unseal(after, field=EMAIL) == "new@example.com"
    assert keystore.unseal(before, field=EMAIL) is None
    assert [t.key_id for t in keystore.erase(ALICE, by="staff:ann")] == [old_key, new_key]


def test_plaintext_from_before_sealing_is_shown_as_it_is(keystore: Keystore) -> None:
    assert keystore.reveal("legacy@example.com", field=EMAIL) == "legacy@example.com"
    assert keystore.show(None, field=EMAIL) is None


def test_a_key_this_keystore_never_had_is_an_error_not_an_erasure(keystore: Keystore) -> None:
    sealed = keystore.seal(ALICE, "x", field=EMAIL)
    foreign = sealed.replace(str(key_id_of(sealed)), "ck_0123456789abcdef_g1")
    with pytest.raises(SealedValueInvalid, match="no key ck_0123456789abcdef_g1"):
        keystore.unseal(foreign, field=EMAIL)


def test_another_master_key_is_refused_at_start_with_a_clear_error(
    keystore: Keystore, settings: KeystoreSettings
) -> None:
    keystore.seal(ALICE, "alice@example.com", field=EMAIL)
    wrong = settings.model_copy(update={"keystore_master_key": OTHER_MASTER_KEY})
    with pytest.raises(MasterKeyMismatch, match="REFUNDS_KEYSTORE_MASTER_KEY is not the master"):
        open_keystore(wrong, "intake")


def test_concurrent_first_seals_agree_on_one_key(settings: KeystoreSettings) -> None:
    stores = [open_keystore(settings, "intake") for _ in range(4)]
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda s=s: keys.append(s.current_key(("acme", "C-new"))))
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and keys[0].endswith("_g1")
    for store in stores:
        store.close()


def test_other_processes_stop_using_an_erased_key_within_the_cache_bound(
    settings: KeystoreSettings,
) -> None:
    now = [0.0]
    eraser = open_keystore(settings, "intake")
    other = open_keystore(settings, "intake", clock=lambda: now[0])  # another process
    assert other.cache_seconds == 2.0
    sealed = eraser.seal(ALICE, "alice@example.com", field=EMAIL)
    assert other.unseal(sealed, field=EMAIL) == "alice@example.com"  # now cached there
    sender = open_keystore(settings, "intake")  # a third, about to send a message
    assert sender.unseal(sealed, field=EMAIL) == "alice@example.com"
    eraser.erase(ALICE, by="staff:ann")
    assert eraser.unseal(sealed, field=EMAIL) is None  # the erasing process: at once
    now[0] = 1.0
    assert other.unseal(sealed, field=EMAIL) == "alice@example.com"  # within the bound
    now[0] = 2.01  # the other process: at most `cache_seconds` later
    assert other.unseal(sealed, field=EMAIL) is None
    assert sender.unseal(sealed, field=EMAIL, fresh=True) is None  # asks the store: at once
    for store in (eraser, other, sender):
        store.close()


def test_look_ups_only_read_and_a_new_key_is_not_read_back(settings: KeystoreSettings) -> None:
    """Sealing for a new customer is one read and one write; opening within the cache asks
    nothing; opening `fresh` reads, and no look-up opens a write transaction."""
    keystore = open_keystore(settings, "intake")
    table = keystore._table
    opened: list[bool] = []  # False: a read, True: a write transaction
    read, write = table.read, table.transaction

    def reading() -> object:
        opened.append(False)
        return read()

    def writing() -> object:
        opened.append(True)
        return write()

    table.read, table.transaction = reading, writing  # type: ignore[method-assign]
    sealed = keystore.seal(ALICE, "alice@example.com", field=EMAIL)
    assert opened == [False, True]  # no key yet; the new one stored
    opened.clear()
    keystore.seal(ALICE, "again", field=EMAIL)
    assert keystore.unseal(sealed, field=EMAIL) == "alice@example.com"
    assert opened == []  # both from the cache
    assert keystore.unseal(sealed, field=EMAIL, fresh=True) == "alice@example.com"
    keystore.forget_cache()
    assert keystore.seal(ALICE, "a third", field=EMAIL).startswith(PREFIX)
    assert keystore.tombstones(ALICE) == []
    assert opened == [False, False, False]  # fresh look, live key (remembered), tombstones
    keystore.close()


def test_the_wrapped_keys_are_not_the_keys(settings: KeystoreSettings) -> None:
    keystore = open_keystore(settings, "intake")
    keystore.seal(ALICE, "alice@example.com", field=EMAIL)
    schema, path = keystore_location(settings, "intake")
    if settings.database_url is None:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT wrapped FROM customer_keys").fetchall()
    else:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute(f'SELECT wrapped FROM "{schema}".customer_keys').fetchall()  # noqa: S608
    # 12-byte nonce + 32-byte key + 16-byte tag, under the master key.
    assert [len(base64.b64decode(row[0])) for row in rows] == [60]
    keystore.close()


def test_settings_name_one_keystore_for_all_services(tmp_path: Path) -> None:
    url = "postgresql://u@h/db"
    for service in ("intake", "review", "notify"):
        pg = KeystoreSettings(database_url=url, database_schema=f"t_1_{service}")
        assert keystore_location(pg, service)[0] == "t_1_keystore"
    assert keystore_location(KeystoreSettings(database_url=url), "intake")[0] == "keystore"
    explicit = KeystoreSettings(database_url=url, keystore_schema="kms")
    assert keystore_location(explicit, "notify")[0] == "kms"
    assert keystore_location(KeystoreSettings(data_dir=tmp_path), "intake") == (
        None,
        tmp_path / "keystore.sqlite",
    )


@pytest.mark.parametrize("value", ["", "changeme", DEV_MASTER_KEY])
def test_production_refuses_a_missing_placeholder_or_dev_master_key(value: str) -> None:
    # Named by its variable (refused) or its field (does not decode).
    with pytest.raises(ValueError, match=r"(?i)keystore_master_key"):
        KeystoreSettings(env="production", keystore_master_key=value, audit_signing_key=_seed())


def test_a_master_key_must_be_32_bytes_of_base64() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeystoreSettings(keystore_master_key=base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        KeystoreSettings(keystore_master_key="not base64!")
    KeystoreSettings(
        env="production", keystore_master_key=OTHER_MASTER_KEY, audit_signing_key=_seed()
    )


def _seed() -> str:
    return base64.b64encode(b"s" * 32).decode()

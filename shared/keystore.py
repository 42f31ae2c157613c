"""Per-customer data keys: personal data is sealed with its customer's key before it is stored,
and erasing the key makes every copy of it unreadable at once (crypto-shredding).

One keystore serves all four services, like a KMS: a table in its own PostgreSQL schema
(`keystore`, or `<prefix>_keystore` when the services' schemas are `<prefix>_<service>`), or
`<data_dir>/keystore.sqlite`. Each customer — the subject `(tenant, customer_id)` — has at
most one live data key (32 random bytes, AES-256-GCM), stored wrapped under the master key
(`REFUNDS_KEYSTORE_MASTER_KEY`). Erasure deletes the wrapped key and keeps a tombstone (key
id, when, by whom); a customer who comes back afterwards gets a key of the next generation,
so their new data is readable and their old data stays shredded.

A sealed value is text: `pii:v1:<key_id>:<base64url(nonce ‖ ciphertext)>`. Its associated
data binds the key id and the name of the field it belongs to, so a value copied into
another field, or under another key id, does not open.

Keys are cached in the process for `cache_seconds` (default 2 s). `erase()` clears this
process's cache before it returns; another process stops using an erased key at the latest
`cache_seconds` after the erasure — the bound on how long a replica may still open (or
seal with) a shredded key. Where that is too long — notify, right before a message leaves
— `unseal(..., fresh=True)` asks the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.keystore_table import KeyTable, keystore_datastore
from shared.keystore_table import keystore_location as keystore_location  # re-exported

if TYPE_CHECKING:
    from shared.settings import KeystoreSettings

PREFIX = "pii:v1:"
ERASED = "[erased]"  # what a read path shows for a value whose key was erased
KEY_BYTES = 32
NONCE_BYTES = 12
# The public dev master key (base64 of 32 bytes): fine for `refunds dev` and the tests,
# refused in production. Anyone can read it here, so nothing it wraps is secret.
DEV_MASTER_KEY = base64.b64encode(b"refunds-dev-keystore-master-key!").decode()
MASTER_CHECK_LABEL = b"refunds keystore master key check v1"
_KEY_ID = re.compile(r"^ck_[0-9a-f]{16}_g[1-9][0-9]{0,8}$")

Subject = tuple[str, str]  # (tenant, customer_id)


class KeystoreError(Exception):
    """The keystore cannot do what was asked (not: the key was erased)."""


class MasterKeyMismatch(KeystoreError):
    """REFUNDS_KEYSTORE_MASTER_KEY is not the key this keystore's keys are wrapped with."""


class SealedValueInvalid(KeystoreError):
    """Not a sealed value, a tampered one, one of an unknown key, or one of another field."""


class KeyErased(KeystoreError):
    """The key was erased: nothing can be sealed under it any more."""


@dataclass(frozen=True)
class Tombstone:
    """What remains of an erased key: which it was, whose, when and by whom it was erased."""

    key_id: str
    tenant: str
    customer_id: str
    generation: int
    erased_at: str
    erased_by: str


def master_key_from(text: str) -> bytes:
    """The 32-byte master key from its base64 text; ValueError with the reason otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_id_of(value: object) -> str | None:
    """The key id a sealed value names; None for anything that is not sealed."""
    if not is_sealed(value):
        return None
    key_id, sep, _ = str(value)[len(PREFIX) :].partition(":")
    return key_id if sep and _KEY_ID.match(key_id) else None


def _aad(key_id: str, field: str) -> bytes:
    return f"{PREFIX}{key_id}:{field}".encode()


def _wrap_aad(key_id: str, subject: Subject) -> bytes:
    # A wrapped key opens only in its own row: swapping rows between customers fails.
    return f"refunds-keystore:v1:{key_id}:{subject[0]}:{subject[1]}".encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Keystore:
    """Seals and opens personal data with per-customer keys; erases a customer's keys."""

    def __init__(
        self,
        table: KeyTable,
        master_key: bytes,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(master_key) != KEY_BYTES:
            raise KeystoreError(f"the master key must be {KEY_BYTES} bytes")
        self._table = table
        self._master = AESGCM(master_key)
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[float, AESGCM | None, Subject]] = {}
        self._current: dict[Subject, tuple[float, str]] = {}
        self._check_master(master_key)

    # -- sealing and opening ----------------------------------------------------------------

    def seal(self, subject: Subject, text: str, *, field: str) -> str:
        """`text` sealed under the subject's live key (a new generation if it has none)."""
        return self.seal_with(self.current_key(subject), text, field=field)

    def seal_with(self, key_id: str, text: str, *, field: str) -> str:
        """`text` sealed under a given key (e.g. the key of data it derives from)."""
        key = self._key(key_id)
        if key is None:
            raise KeyErased(key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.encrypt(nonce, text.encode(), _aad(key_id, field))
        return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def unseal(self, value: str, *, field: str, fresh: bool = False) -> str | None:
        """The plaintext of a sealed value; None when its key was erased. `fresh` looks the key
        up in the store rather than the cache: no erasure that returned before is missed.

        Raises `SealedValueInvalid` for anything else that does not open: not sealed,
        tampered, sealed for another field, or under a key this keystore never had.
        """
        key_id = key_id_of(value)
        if key_id is None:
            raise SealedValueInvalid("not a sealed value")
        key = self._key(key_id, fresh=fresh)
        if key is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(value[len(PREFIX) + len(key_id) + 1 :])
            opened = key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, field))
        except (InvalidTag, binascii.Error, ValueError):
            raise SealedValueInvalid(f"{field}: does not open under {key_id}") from None
        return opened.decode()

    def reveal(self, value: str | None, *, field: str, fresh: bool = False) -> str | None:
        """For read paths: plaintext, or None when erased. A value that is not sealed (stored
        before sealing existed, or never personal) is returned as it is."""
        if value is None or not is_sealed(value):
            return value
        return self.unseal(value, field=field, fresh=fresh)

    def show(self, value: str | None, *, field: str) -> str | None:
        """Like `reveal`, with the `[erased]` marker in place of an erased value."""
        if value is None or not is_sealed(value):
            return value
        opened = self.unseal(value, field=field)
        return ERASED if opened is None else opened

    def is_erased(self, key_id: str) -> bool:
        return self._key(key_id) is None

    # -- keys ------------------------------------------------------------------------------

    def current_key(self, subject: Subject) -> str:
        """The subject's live key id, created (next generation) when it has none."""
        now = self._clock()
        with self._lock:
            cached = self._current.get(subject)
        if cached is not None and cached[0] > now:
            return cached[1]
        for _ in range(5):
            row = self._latest(subject)
            if row is not None and row["wrapped"] is not None:
                key_id = str(row["key_id"])
                self._remember_current(subject, key_id)
                return key_id
            generation = 1 if row is None else int(row["generation"]) + 1
            created = self._create(subject, generation)
            if created is not None:
                return created
            # A concurrent creator won: read again.
        raise KeystoreError(f"could not create a key for {subject}")

    def erase(self, subject: Subject, *, by: str) -> list[Tombstone]:
        """Shred every live key of the subject; answers all its tombstones, oldest first.

        Erasing again erases nothing new. This process stops using the keys before this
        returns; other processes within `cache_seconds`.
        """
        with self._table.transaction() as db:
            db.execute(
                self._table.sql(
                    "UPDATE {keys} SET wrapped = NULL, erased_at = ?, erased_by = ? "
                    "WHERE tenant = ? AND customer_id = ? AND wrapped IS NOT NULL"
                ),
                (_now(), by, *subject),
            )
        with self._lock:
            self._current.pop(subject, None)
            for key_id in [k for k, (_, _, s) in self._keys.items() if s == subject]:
                del self._keys[key_id]
        return self.tombstones(subject)

    def tombstones(self, subject: Subject) -> list[Tombstone]:
        with self._table.read() as db:
            db.execute(
                self._table.sql(
                    "SELECT key_id, generation, erased_at, erased_by FROM {keys} "
                    "WHERE tenant = ? AND customer_id = ? AND wrapped IS NULL "
                    "ORDER BY generation"
                ),
                subject,
            )
            rows = db.fetchall()
        return [
            Tombstone(
                str(r["key_id"]),
                subject[0],
                subject[1],
                int(r["generation"]),
                str(r["erased_at"]),
                str(r["erased_by"]),
            )
            for r in rows
        ]

    def knows(self, subject: Subject) -> bool:
        return self._latest(subject) is not None

    def forget_cache(self) -> None:
        with self._lock:
            self._keys.clear()
            self._current.clear()

    def _key(self, key_id: str, *, fresh: bool = False) -> AESGCM | None:
        now = self._clock()
        with self._lock:
            cached = self._keys.get(key_id)
        # An erased key stays erased: no need to look again.
        if cached is not None and (cached[1] is None or (cached[0] > now and not fresh)):
            return cached[1]
        with self._table.read() as db:
            db.execute(
                self._table.sql("SELECT tenant, customer_id, wrapped FROM {keys} WHERE key_id = ?"),
                (key_id,),
            )
            row = db.fetchone()
        if row is None:
            raise SealedValueInvalid(f"no key {key_id} in keystore {self._table.where}")
        subject: Subject = (str(row["tenant"]), str(row["customer_id"]))
        wrapped = row["wrapped"]
        key = None if wrapped is None else AESGCM(self._unwrap(key_id, subject, str(wrapped)))
        self._remember_key(key_id, key, subject, now)
        return key

    def _remember_key(
        self, key_id: str, key: AESGCM | None, subject: Subject, now: float | None = None
    ) -> None:
        at = self._clock() if now is None else now
        with self._lock:
            self._keys[key_id] = (at + self.cache_seconds, key, subject)

    def _latest(self, subject: Subject) -> dict[str, Any] | None:
        """The subject's newest key row; a live one's key is remembered too (the caller is
        about to seal with it), so sealing needs no second look-up."""
        with self._table.read() as db:
            db.execute(
                self._table.sql(
                    "SELECT key_id, generation, wrapped FROM {keys} "
                    "WHERE tenant = ? AND customer_id = ? ORDER BY generation DESC LIMIT 1"
                ),
                subject,
            )
            row = db.fetchone()
        if row is None:
            return None
        found = {key: row[key] for key in ("key_id", "generation", "wrapped")}
        if found["wrapped"] is not None:
            key_id = str(found["key_id"])
            self._remember_key(
                key_id, AESGCM(self._unwrap(key_id, subject, str(found["wrapped"]))), subject
            )
        return found

    def _create(self, subject: Subject, generation: int) -> str | None:
        """A new key of this generation; None when a concurrent creator stored one first."""
        key_id = f"ck_{secrets.token_hex(8)}_g{generation}"
        nonce = os.urandom(NONCE_BYTES)
        key = AESGCM.generate_key(bit_length=256)
        wrapped = nonce + self._master.encrypt(nonce, key, _wrap_aad(key_id, subject))
        with self._table.transaction() as db:
            db.execute(
                self._table.sql(
                    "INSERT INTO {keys} (key_id, tenant, customer_id, generation, wrapped, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (tenant, customer_id, generation) DO NOTHING RETURNING key_id"
                ),
                (key_id, *subject, generation, base64.b64encode(wrapped).decode(), _now()),
            )
            inserted = db.fetchone() is not None
        if not inserted:
            return None
        # Ours is the subject's live key: known without reading it back.
        self._remember_key(key_id, AESGCM(key), subject)
        self._remember_current(subject, key_id)
        return key_id

    def _unwrap(self, key_id: str, subject: Subject, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return self._master.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _wrap_aad(key_id, subject)
            )
        except InvalidTag:
            raise MasterKeyMismatch(
                f"key {key_id} does not unwrap: its row was altered, or "
                "REFUNDS_KEYSTORE_MASTER_KEY is not the key it was wrapped with"
            ) from None

    def _remember_current(self, subject: Subject, key_id: str) -> None:
        with self._lock:
            self._current[subject] = (self._clock() + self.cache_seconds, key_id)

    def _check_master(self, master_key: bytes) -> None:
        """Refuse at start-up a master key other than the one the keystore was created with."""
        check = hmac.new(master_key, MASTER_CHECK_LABEL, hashlib.sha256).hexdigest()
        with self._table.transaction() as db:
            db.execute(
                self._table.sql(
                    "INSERT INTO {meta} (name, value) VALUES ('master_key_check', ?) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                (check,),
            )
            db.execute(self._table.sql("SELECT value FROM {meta} WHERE name = 'master_key_check'"))
            row = db.fetchone()
        if row is None or not hmac.compare_digest(str(row["value"]), check):
            raise MasterKeyMismatch(
                f"REFUNDS_KEYSTORE_MASTER_KEY is not the master key of keystore "
                f"{self._table.where}: its keys cannot be unwrapped with it"
            )

    def close(self) -> None:
        self._table.close()


def open_keystore(
    settings: KeystoreSettings, service: str, *, clock: Callable[[], float] = time.monotonic
) -> Keystore:
    """The keystore the settings name (shared by every service on the same store)."""
    return Keystore(
        KeyTable(keystore_datastore(settings, service)),
        settings.keystore_master_key_bytes(),
        cache_seconds=settings.keystore_cache_seconds,
        clock=clock,
    )

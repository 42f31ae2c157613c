"""The tenants' own provider accounts: configured through the admin API, used by the routes.

`configure` validates the credentials with the provider's own account model (a key that
does not parse, or a pair that does not match, is refused naming the field, and nothing is
stored), seals them in the keystore and records the account. `provider_for` and `route`
answer payout's routing (services/payout/adapters.py): a route is built once per account
version and reused, so a rotation takes effect on the next request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from prometheus_client import Counter
from pydantic import ValidationError

from services.payout.accounts import SEALED_FIELD, ProviderAccount, keystore_subject
from services.payout.providers.base import (
    CallbackRefused,
    Callbacks,
    PermanentProviderError,
    ProviderSpec,
    RefundRoute,
)
from shared.application import ServiceApplication
from shared.keystore import Keystore

CALLBACK_PATH = "/v1/providers/{provider}/{tenant}/callbacks"
# How long a routing look-up trusts what it read: a reconfiguration reaches every replica's
# routing within this bound (the replica that made it at once).
LOOKUP_CACHE_SECONDS = 2.0
# Saving an account that another admin changed meanwhile is retried on top of theirs.
SAVE_ATTEMPTS = 5


class UnknownProvider(LookupError):
    """No provider of that name (a 404 naming the known ones)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no payment provider {name!r}; known: {', '.join(known)}")


class AccountNotConfigured(LookupError):
    """The tenant has no (active) account at that provider."""


class AccountBusy(RuntimeError):
    """The account changed under every attempt to save it (a 409: try again)."""


class AccountInvalid(ValueError):
    """The credentials do not validate: pydantic's errors, one per bad field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} field(s) invalid")
        self.errors = errors


@dataclass(frozen=True)
class _Opened:
    """An account's credentials, opened, with what was built from them."""

    version: int
    route: RefundRoute
    callbacks: Callbacks


class TenantProviders:
    """Provider accounts per tenant over payout's store and the shared keystore."""

    def __init__(
        self,
        app: ServiceApplication,
        keystore: Keystore,
        specs: Mapping[str, ProviderSpec],
        public_url: str,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.keystore = keystore
        self.specs = dict(specs)
        self.public_url = public_url.rstrip("/")
        self.timeout_s = timeout_s  # per call to a provider (REFUNDS_PROVIDER_TIMEOUT_S)
        self._opened: dict[tuple[str, str], _Opened] = {}
        self._looked: dict[tuple[str, str], tuple[float, ProviderAccount | None]] = {}
        self._lock = threading.Lock()
        # Registered with the service's metrics by the composition root (none in tests).
        self.callbacks_seen = Counter(
            "refunds_provider_callbacks",
            "Provider notifications by provider and outcome: what they did to a payout, "
            "`replayed`, or the reason they were refused (bad-signature: not the provider's).",
            ["provider", "outcome"],
            registry=None,
        )

    # -- the admin API's commands and queries ----------------------------------------------

    def spec(self, provider: str) -> ProviderSpec:
        found = self.specs.get(provider)
        if found is None:
            raise UnknownProvider(provider, sorted(self.specs))
        return found

    def configure(
        self, tenant: str, provider: str, credentials: dict[str, Any], *, actor: str
    ) -> tuple[ProviderAccount, bool]:
        """Validate, seal and record the tenant's account; (account, created now)."""
        spec = self.spec(provider)
        try:
            model = spec.account.model_validate(credentials)
        except ValidationError as error:
            raise AccountInvalid([dict(e) for e in error.errors(include_url=False)]) from None
        summary = model.summary()
        subject = keystore_subject(tenant, provider)
        sealed = self.keystore.seal(subject, json.dumps(credentials), field=SEALED_FIELD)
        methods = sorted(spec.methods)
        at = self.app.clock()
        for _ in range(SAVE_ATTEMPTS):
            account = self.account(tenant, provider)
            created = account is None
            if account is None:
                account = ProviderAccount(
                    tenant=tenant,
                    provider=provider,
                    methods=methods,
                    sealed=sealed,
                    summary=summary,
                    actor=actor,
                    at=at,
                )
            else:
                account.reconfigure(methods, sealed, summary, actor, at)
            try:
                self.app.save(account)
            except IntegrityError:
                # Another admin saved this account between our read and our save: a PUT
                # replaces the configuration, so ours goes on top of theirs (last one wins).
                continue
            self._forget(tenant, provider)
            return account, created
        raise AccountBusy(f"{tenant}'s {provider} account keeps changing; try again")

    def remove(self, tenant: str, provider: str, *, actor: str) -> ProviderAccount:
        """Remove the account and shred every sealed copy of its credentials."""
        self.spec(provider)
        for _ in range(SAVE_ATTEMPTS):
            account = self.account(tenant, provider)
            if account is None or not account.active:
                raise AccountNotConfigured(f"{tenant} has no {provider} account")
            account.remove(actor, self.app.clock())
            try:
                self.app.save(account)
            except IntegrityError:
                continue  # changed meanwhile (a rotation, another removal): look again
            break
        else:
            raise AccountBusy(f"{tenant}'s {provider} account keeps changing; try again")
        self.keystore.erase(keystore_subject(tenant, provider), by=actor)
        self._forget(tenant, provider)
        return account

    def account(self, tenant: str, provider: str) -> ProviderAccount | None:
        try:
            found: object = self.app.repository.get(ProviderAccount.create_id(tenant, provider))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, ProviderAccount) else None

    def accounts(self, tenant: str) -> list[ProviderAccount]:
        """The tenant's accounts, active or removed, by provider name."""
        found = (self.account(tenant, name) for name in sorted(self.specs))
        return [account for account in found if account is not None]

    # -- routing (services/payout/adapters.TenantProviders) --------------------------------

    def provider_for(self, tenant: str, method: str) -> str | None:
        for name, spec in sorted(self.specs.items()):
            if method in spec.methods:
                account = self._looked_up(tenant, name)
                if account is not None and account.active:
                    return name
        return None

    def route(self, tenant: str, provider: str) -> RefundRoute:
        return self._open(tenant, provider).route

    def callbacks(self, tenant: str, provider: str) -> Callbacks:
        return self._open(tenant, provider).callbacks

    def callbacks_or_refused(self, tenant: str, provider: str) -> Callbacks:
        """The account's verifier; a callback to a tenant with no such account is refused."""
        try:
            return self.callbacks(tenant, provider)
        except PermanentProviderError:
            raise CallbackRefused("unknown-key") from None

    def notify_url(self, tenant: str, provider: str) -> str:
        return self.public_url + CALLBACK_PATH.format(provider=provider, tenant=tenant)

    def _open(self, tenant: str, provider: str) -> _Opened:
        spec = self.specs.get(provider)
        account = self._looked_up(tenant, provider)
        if spec is None or account is None or account.sealed is None:
            raise PermanentProviderError(f"{tenant} has no {provider} account configured")
        with self._lock:
            opened = self._opened.get((tenant, provider))
            if opened is not None and opened.version == account.version:
                return opened
        text = self.keystore.unseal(account.sealed, field=SEALED_FIELD)
        if text is None:
            raise PermanentProviderError(f"{tenant}'s {provider} credentials were erased")
        model = spec.account.model_validate(json.loads(text))
        opened = _Opened(
            account.version,
            spec.route(model, self.notify_url(tenant, provider), timeout=self.timeout_s),
            spec.callbacks(model),
        )
        with self._lock:
            self._opened[(tenant, provider)] = opened
        return opened

    def _looked_up(self, tenant: str, provider: str) -> ProviderAccount | None:
        now = time.monotonic()
        with self._lock:
            cached = self._looked.get((tenant, provider))
        if cached is not None and now - cached[0] < LOOKUP_CACHE_SECONDS:
            return cached[1]
        account = self.account(tenant, provider)
        with self._lock:
            self._looked[(tenant, provider)] = (now, account)
        return account

    def _forget(self, tenant: str, provider: str) -> None:
        with self._lock:
            self._looked.pop((tenant, provider), None)

    async def close(self) -> None:
        """Close the HTTP clients of every route built."""
        with self._lock:
            opened = list(self._opened.values())
            self._opened.clear()
        for each in opened:
            close = getattr(each.route, "close", None)
            if close is not None:
                await close()

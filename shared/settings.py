"""Configuration from environment variables, validated once at start-up."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import DEV_API_KEY, DEV_TENANT, parse_api_keys
from shared.contracts import SERVICES
from shared.keystore import DEV_MASTER_KEY, master_key_from
from shared.signing import Signer, dev_seed
from shared.staff_oidc import OidcConfig
from shared.staff_tokens import DEV_JWT_SECRET

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "dev", "test", "example"}


class ServiceSettings(BaseSettings):
    """What every service reads; each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_prefix="REFUNDS_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "production"] = Field(
        "dev", description="`production` refuses missing or placeholder secrets"
    )
    host: str = Field("127.0.0.1", description="interface the HTTP server binds")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of this service")
    data_dir: Path = Field(Path("data"), description="folder for SQLite stores")
    database_url: str | None = Field(
        None,
        description="postgresql://user:pass@host:port/db — PostgreSQL instead of SQLite",
        pattern=r"^postgres(ql)?://",
    )
    database_schema: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema; defaults to the service name",
    )
    database_pool_size: int = Field(
        6, ge=1, le=100, description="PostgreSQL connections each store keeps open"
    )
    database_max_overflow: int = Field(
        6, ge=0, le=100, description="extra PostgreSQL connections a store may open at peaks"
    )
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_partitions: int = Field(4, ge=1, le=1024, description="partitions per topic")
    kafka_idempotence: bool = Field(False, description="idempotent producer (off for tansu)")
    kafka_session_timeout_ms: int = Field(
        6_000,
        ge=1_000,
        le=300_000,
        description="consumer group session: a silent member is dropped after it; heartbeats "
        "go every third of it. Apache Kafka refuses less than its "
        "group.min.session.timeout.ms (6 s by default); tansu, the dev broker, holds every "
        "join for half of it (the test suite sets 3 s: a started consumer joins in 1.5 s)",
    )
    consumer_linger_ms: int = Field(
        10,
        ge=0,
        le=1_000,
        description="how long the consumer waits, once records arrived, for more to join the "
        "batch: one thread hop, one offset commit per batch instead of per record",
    )
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$", description="topic name prefix")
    relay_enabled: bool = Field(True, description="run the outbox relay in this process")
    consumer_enabled: bool = Field(True, description="run the Kafka consumer in this process")
    poll_interval_ms: int = Field(
        20,
        ge=1,
        le=10_000,
        description="shortest pause between looks at the event log (appends in this process "
        "wake the followers that want them; other processes' appends are looked for from "
        "100 ms after a batch, up to every 1 s)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object per log line with the trace and refund ids "
        "(REFUNDS_LOG_FORMAT); `text` for people reading a terminal",
    )
    otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 "
        "(REFUNDS_OTLP_ENDPOINT); spans go to <url>/v1/traces. Unset: no tracing",
    )
    replica: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=128,
        description="this process's name among its service's replicas: the `replica` label of "
        "its fleet metrics, on spans and log lines (REFUNDS_REPLICA; the hostname, a pod's "
        "name, when unset)",
    )
    lease_seconds: float = Field(
        10,
        ge=1,
        le=600,
        description="how long a replica's lease on a background role (relay, executor …) lasts "
        "unrenewed (REFUNDS_LEASE_SECONDS); it renews every third of it, and another replica "
        "takes over a role this long after its leader stopped renewing (PostgreSQL)",
    )
    audit_signing_key: str = Field(
        "",
        repr=False,
        description="base64 Ed25519 seed (32 bytes) signing this service's ledger checkpoints "
        "(REFUNDS_AUDIT_SIGNING_KEY); outside production a public dev key per service",
    )
    audit_checkpoint_seconds: int = Field(
        60, ge=1, le=86_400, description="how often a signed ledger checkpoint is written"
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {server!r}")
        return value

    @field_validator("audit_signing_key")
    @classmethod
    def _signing_key_decodes(cls, value: str) -> str:
        if value:
            Signer(value)  # BadKey is a ValueError: reported as a configuration problem
        return value

    @model_validator(mode="after")
    def _real_signing_key_in_production(self) -> ServiceSettings:
        if self.env == "production" and (
            not self.audit_signing_key or self.audit_signing_key in {dev_seed(s) for s in SERVICES}
        ):
            raise ValueError("REFUNDS_AUDIT_SIGNING_KEY must be set to a real key in production")
        return self

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    def audit_signer(self, service: str) -> Signer:
        """The key that signs `service`'s checkpoints (the public dev key outside production)."""
        return Signer(self.audit_signing_key or dev_seed(service))


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or exit with one clear line per bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration ({error.error_count()} problem(s)):"]
        for item in error.errors():
            name = prefix + "_".join(str(part) for part in item["loc"]).upper()
            lines.append(f"  {name}: {item['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def refuse_placeholder(name: str, value: str | None, env: str) -> None:
    """Outside dev/test, a missing or placeholder secret stops start-up."""
    if env == "production" and (value is None or value.strip().lower() in PLACEHOLDERS):
        raise ValueError(f"{name} must be set to a real secret in production")


class PlatformSettings(ServiceSettings):
    """Settings of a service with a platform API: the tenants' bootstrap API keys."""

    api_keys: str = Field(
        "",
        description="platform API keys as tenant:key,tenant:key (dev: a local key is added)",
    )

    @field_validator("api_keys")
    @classmethod
    def _parseable(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @model_validator(mode="after")
    def _real_keys_in_production(self) -> PlatformSettings:
        # In production the keys may all be stored ones (`refunds api-keys create`),
        # but any given here must be real.
        if self.env == "production" and self.api_keys.strip():
            refuse_placeholder("REFUNDS_API_KEYS", self.api_keys, self.env)
            for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
                key = pair.partition(":")[2].strip()
                if len(key) < 24 or key == DEV_API_KEY:
                    raise ValueError("REFUNDS_API_KEYS: production keys need 24+ characters")
        return self

    def hashed_api_keys(self) -> dict[str, str]:
        keys = parse_api_keys(self.api_keys)
        if self.env != "production" and not keys:
            keys = parse_api_keys(f"{DEV_TENANT}:{DEV_API_KEY}")
        return keys


class StaffSettings(ServiceSettings):
    """Settings of a service with a staff API: the secret that signs HS256 staff tokens, and
    the OpenID Provider whose access tokens are accepted too."""

    jwt_secret: str = Field(
        "",
        repr=False,
        description="HS256 secret of staff tokens (REFUNDS_JWT_SECRET); outside production, "
        "the public dev secret",
    )
    oidc_issuer: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="issuer URL of the OpenID Provider whose access tokens staff may use "
        "(REFUNDS_OIDC_ISSUER); unset: only HS256 staff tokens",
    )
    oidc_audience: str = Field(
        "refunds",
        min_length=1,
        description="the `aud` the provider's access tokens must carry (REFUNDS_OIDC_AUDIENCE)",
    )
    oidc_roles_claim: str = Field(
        "roles",
        pattern=r"^[A-Za-z_][A-Za-z0-9_:-]*(\.[A-Za-z_][A-Za-z0-9_:-]*)*$",
        description="claim holding the staff roles, a dotted path for nested claims "
        "(REFUNDS_OIDC_ROLES_CLAIM; Keycloak: `realm_access.roles`)",
    )
    oidc_person_claim: str = Field(
        "preferred_username",
        pattern=r"^[A-Za-z_][A-Za-z0-9_:-]*$",
        description="claim naming the person recorded as the actor, else `sub` "
        "(REFUNDS_OIDC_PERSON_CLAIM)",
    )
    oidc_jwks_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="the provider's JWKS URL (REFUNDS_OIDC_JWKS_URL); default: from discovery",
    )

    @model_validator(mode="after")
    def _real_staff_secret_in_production(self) -> StaffSettings:
        if self.env == "production":
            refuse_placeholder("REFUNDS_JWT_SECRET", self.jwt_secret or None, self.env)
            if len(self.jwt_secret) < 32 or self.jwt_secret == DEV_JWT_SECRET:
                raise ValueError(
                    "REFUNDS_JWT_SECRET: production needs 32+ characters, not the dev secret"
                )
        return self

    def staff_secret(self) -> str:
        return self.jwt_secret or DEV_JWT_SECRET

    def oidc(self) -> OidcConfig | None:
        """The OpenID Provider staff tokens may come from, or None when none is configured."""
        if not self.oidc_issuer:
            return None
        return OidcConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            roles_claim=self.oidc_roles_claim,
            person_claim=self.oidc_person_claim,
            jwks_url=self.oidc_jwks_url,
        )


class KeystoreSettings(ServiceSettings):
    """Settings of a service that seals or opens personal data (shared/keystore.py)."""

    keystore_master_key: str = Field(
        "",
        repr=False,
        description="base64 of 32 bytes wrapping every customer key "
        "(REFUNDS_KEYSTORE_MASTER_KEY); outside production, the public dev key",
    )
    keystore_schema: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the shared keystore; default `keystore`, or "
        "`<prefix>_keystore` when this service's schema is `<prefix>_<service>`",
    )
    keystore_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=10,
        description="how long a process keeps a customer key; another service stops using an "
        "erased key at most this long after the erasure",
    )

    @field_validator("keystore_master_key")
    @classmethod
    def _master_key_decodes(cls, value: str) -> str:
        if value:
            master_key_from(value)  # ValueError: reported as a configuration problem
        return value

    @model_validator(mode="after")
    def _real_master_key_in_production(self) -> KeystoreSettings:
        if self.env == "production":
            refuse_placeholder(
                "REFUNDS_KEYSTORE_MASTER_KEY", self.keystore_master_key or None, self.env
            )
            if self.keystore_master_key.strip() == DEV_MASTER_KEY:
                raise ValueError("REFUNDS_KEYSTORE_MASTER_KEY: production needs its own key")
        return self

    def keystore_master_key_bytes(self) -> bytes:
        return master_key_from(self.keystore_master_key or DEV_MASTER_KEY)

"""The console's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, model_validator

from services.console.vocabulary import LOCALES
from shared.settings import ServiceSettings, refuse_placeholder

# Public development values: they prove nothing, so production refuses them.
DEV_SESSION_SECRET = "console-dev-session-secret-not-for-production"  # noqa: S105
DEV_CLIENT_SECRET = "dev-console-secret"  # noqa: S105 - the sandbox provider's demo client
URL = r"^https?://[^\s/]+(/\S*)?$"


def _secure_origin(url: str) -> bool:
    """https, or a loopback host (browsers keep Secure cookies for http://localhost)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in {"localhost", "127.0.0.1", "::1"}


class ConsoleSettings(ServiceSettings):
    port: int = Field(8005, ge=1, le=65535)
    console_url: str = Field(
        "http://127.0.0.1:8005",
        pattern=URL,
        description="the console's public base URL; the redirect URI is <it>/auth/callback",
    )
    oidc_issuer: str = Field(
        "http://127.0.0.1:8050",
        pattern=URL,
        description="the OpenID Provider (discovery at <issuer>/.well-known/openid-configuration)",
    )
    oidc_client_id: str = Field("refunds-console", min_length=1, max_length=200)
    oidc_client_secret: str = Field(
        DEV_CLIENT_SECRET, repr=False, description="the console's client secret at the provider"
    )
    oidc_roles_claim: str = Field(
        "roles",
        min_length=1,
        description="the access token's claim listing the staff roles, a dotted path for a "
        "nested one (Keycloak: realm_access.roles), as the services read it",
    )
    oidc_person_claim: str = Field(
        "preferred_username",
        min_length=1,
        description="the access token's claim the services record as the actor",
    )
    intake_url: str = Field("http://127.0.0.1:8001", pattern=URL)
    review_url: str = Field("http://127.0.0.1:8002", pattern=URL)
    payout_url: str = Field("http://127.0.0.1:8003", pattern=URL)
    notify_url: str = Field("http://127.0.0.1:8004", pattern=URL)
    service_timeout_s: float = Field(10.0, gt=0, le=120, description="per call to a service")
    session_secret: str = Field(
        "",
        repr=False,
        description="keys the session table's rows (HMAC of each session id; changing it ends"
        " every session) (REFUNDS_SESSION_SECRET); outside production, a public dev secret",
    )
    session_hours: int = Field(12, ge=1, le=24 * 30, description="idle sessions end after this")
    default_locale: str = Field("zh-CN", description="the language before a person picks one")
    default_zone: str = Field("Asia/Shanghai", description="the time zone pages show times in")

    @model_validator(mode="after")
    def _real_signing_key_in_production(self) -> ConsoleSettings:
        """The console keeps no ledger, so it signs no checkpoints and needs no signing key."""
        return self

    @model_validator(mode="after")
    def _checked(self) -> ConsoleSettings:
        if self.default_locale not in LOCALES:
            raise ValueError(f"REFUNDS_DEFAULT_LOCALE: one of {', '.join(LOCALES)}")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.default_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"REFUNDS_DEFAULT_ZONE: unknown zone {self.default_zone!r}") from None
        if self.env == "production":
            refuse_placeholder("REFUNDS_SESSION_SECRET", self.session_secret or None, self.env)
            if len(self.session_secret) < 32 or self.session_secret == DEV_SESSION_SECRET:
                raise ValueError(
                    "REFUNDS_SESSION_SECRET: production needs 32+ characters, not the dev secret"
                )
            refuse_placeholder(
                "REFUNDS_OIDC_CLIENT_SECRET", self.oidc_client_secret or None, self.env
            )
            if self.oidc_client_secret == DEV_CLIENT_SECRET:
                raise ValueError("REFUNDS_OIDC_CLIENT_SECRET must be a real secret in production")
            if not _secure_origin(self.console_url):
                raise ValueError(
                    "REFUNDS_CONSOLE_URL must be https:// in production (or a loopback address)"
                )
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.env == "production"

    @property
    def redirect_uri(self) -> str:
        return self.console_url.rstrip("/") + "/auth/callback"

    def secret(self) -> str:
        return self.session_secret or DEV_SESSION_SECRET

    def service_urls(self) -> dict[str, str]:
        return {
            "intake": self.intake_url,
            "review": self.review_url,
            "payout": self.payout_url,
            "notify": self.notify_url,
        }

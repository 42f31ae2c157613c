"""The Kubernetes manifests (deploy/k8s), checked offline against the services' own settings
classes: each pod's environment is accepted in production, with every placeholder of the
Secret refused, and no ConfigMap holds a secret, so a missing or refused variable fails
here, not in a pod."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.support.k8s_manifests import (
    BASE,
    CREDENTIALS_IN_URL,
    NO_BACKGROUND_ROLES,
    PRODUCTION,
    SECRET_NAME,
    SETTINGS,
    Resource,
    _pods,
    render,
)


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(BASE)


@pytest.fixture(scope="module")
def secret_template(base: list[Resource]) -> dict[str, str]:
    (secret,) = [r for r in base if r.kind == "Secret"]
    return dict(secret.body["stringData"])


def valid_secrets() -> dict[str, str]:
    """Values of the right shape for every key of the Secret template (none is real)."""
    seed = {svc: base64.b64encode(bytes([n]) * 32).decode() for n, svc in enumerate(SETTINGS, 1)}
    return {
        "database-url": "postgresql://refunds:pw@db.example.internal:5432/refunds",
        "jwt-secret": "j" * 40,
        "keystore-master-key": base64.b64encode(b"k" * 32).decode(),
        **{f"{svc}-audit-signing-key": seed[svc] for svc in SETTINGS if svc != "console"},
        "api-keys": "tenant-a:" + "a" * 32,
        "gateway-callback-secret": "g" * 40,
        "console-oidc-client-secret": "c" * 40,
        "console-session-secret": "s" * 40,
    }


def _environment(
    resources: list[Resource], container: dict[str, Any], secrets: dict[str, str], where: str
) -> dict[str, str]:
    """What the container's process finds in its environment (envFrom first, env wins)."""
    maps = {r.name: r.body.get("data", {}) for r in resources if r.kind == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        if name not in maps:
            raise AssertionError(f"{where}: envFrom names ConfigMap {name}, which is not there")
        env.update(maps[name])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["name"] != "refunds-secrets":
            raise AssertionError(f"{where}: {item['name']} reads unknown Secret {ref['name']}")
        if ref["key"] in secrets:
            env[item["name"]] = secrets[ref["key"]]
        elif not ref.get("optional"):
            raise AssertionError(f"{where}: {item['name']} reads `{ref['key']}`, not in the Secret")
    return env


def _load(settings: type[BaseModel], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the settings from exactly `env`, as the service does at start-up."""
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("REFUNDS_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        settings()


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_each_pod_gets_every_setting_production_requires_and_placeholders_are_refused(
    folder: Path, secret_template: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = render(folder)
    secrets = valid_secrets()
    problems = [
        f"secret.template.yaml: no valid example for `{k}` in this test"
        for k in secret_template
        if k not in secrets
    ]
    for deployment, container, service in _pods(resources):
        where = deployment.where()
        env = _environment(resources, container, secrets, where)
        if folder == PRODUCTION and env.get("REFUNDS_ENV") != "production":
            problems.append(f"{where}: REFUNDS_ENV is {env.get('REFUNDS_ENV')!r}, not production")
        env["REFUNDS_ENV"] = "production"
        if env.get("REFUNDS_HOST") != "0.0.0.0":
            problems.append(f"{where}: REFUNDS_HOST must be 0.0.0.0, or the probes cannot reach it")
        if env.get("REFUNDS_PORT") != str(container["ports"][0]["containerPort"]):
            problems.append(f"{where}: REFUNDS_PORT is not the container port")
        if "REFUNDS_DATABASE_URL" not in env:
            problems.append(
                f"{where}: no REFUNDS_DATABASE_URL: it would keep SQLite in an emptyDir"
            )
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if env.get("REFUNDS_DATA_DIR") not in mounts or "/tmp" not in mounts:
            problems.append(f"{where}: REFUNDS_DATA_DIR and /tmp need writable mounts")
        cls = SETTINGS[service]
        try:
            _load(cls, env, monkeypatch)
        except ValidationError as error:
            problems.append(f"{where}: {cls.__name__} refuses its environment: {error}")
            continue
        worker = deployment.name.endswith("-worker")
        for field in [f for f in cls.model_fields if f.endswith("_enabled")]:
            if service in NO_BACKGROUND_ROLES:
                continue
            wanted = "true" if worker else "false"
            if env.get(f"REFUNDS_{field.upper()}", "true") != wanted:
                problems.append(
                    f"{where}: REFUNDS_{field.upper()} must be {wanted} "
                    "(background roles run in the one-replica worker only)"
                )
        for item in container.get("env", []):
            key = item.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
            if key in secret_template:
                try:
                    _load(cls, {**env, item["name"]: secret_template[key]}, monkeypatch)
                    problems.append(f"{where}: placeholder of `{key}` accepted in production")
                except ValidationError:
                    pass
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_no_secret_in_a_config_map(folder: Path) -> None:
    secret_fields = {
        f"REFUNDS_{name.upper()}"
        for cls in SETTINGS.values()
        for name, field in cls.model_fields.items()
        if field.repr is False
    }
    problems = []
    for config in (r for r in render(folder) if r.kind == "ConfigMap"):
        for key, value in config.body.get("data", {}).items():
            if key in secret_fields or SECRET_NAME.search(key):
                problems.append(f"{config.where()}: {key} is a secret: put it in the Secret")
            elif CREDENTIALS_IN_URL.search(str(value)):
                problems.append(f"{config.where()}: {key} holds credentials in a URL")
    assert not problems, "\n".join(problems)

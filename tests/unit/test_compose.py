"""Static checks of the container deployment: docker-compose.yml and deploy/Dockerfile.

No Docker engine is needed: the files are parsed, not built or run. ``yaml.safe_load``
resolves the ``<<`` merge keys, so the checks see each service as Compose would.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"

REFUND_SERVICES = {"intake": 8001, "review": 8002, "payout": 8003, "notify": 8004}
INFRA_SERVICES = ("kafka", "postgres", "gateway", "mailsink")
SIGN_IN_SERVICES = ("keycloak", "console")
EXTRA_DEPENDENCIES = {"payout": "gateway", "notify": "mailsink"}


@pytest.fixture(scope="module")
def compose_text() -> str:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict), "docker-compose.yml must be a YAML mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no `services:` mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile_lines() -> list[str]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return _dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _dockerfile_instructions(text: str) -> list[str]:
    """Instructions of a Dockerfile, comments dropped and continuation lines joined."""
    instructions: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instructions.append(current + line)
        current = ""
    if current:
        instructions.append(current.strip())
    return instructions


def _as_text(value: Any) -> str:
    """A command / healthcheck test in either list or string form, as one string."""
    if isinstance(value, list):
        return " ".join(str(part) for part in value)
    return str(value)


def _as_argv(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(part) for part in value]
    return shlex.split(str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form carries no condition
        return {str(name): {} for name in deps}
    return {str(name): (spec or {}) for name, spec in deps.items()}


def test_all_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    expected = {*INFRA_SERVICES, *REFUND_SERVICES, *SIGN_IN_SERVICES}
    missing = sorted(expected - services.keys())
    assert not missing, f"docker-compose.yml is missing services: {missing}"


def test_kafka_runs_kraft_without_zookeeper(
    services: dict[str, dict[str, Any]], compose_text: str
) -> None:
    env = _environment(services["kafka"])
    roles = {role.strip() for role in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert "controller" in roles, (
        f"kafka must run in KRaft mode: KAFKA_PROCESS_ROLES={env.get('KAFKA_PROCESS_ROLES')!r} "
        "has no `controller` role"
    )
    assert "broker" in roles, "kafka is the only node, so it must also have the `broker` role"
    assert "zookeeper" not in compose_text.lower(), (
        "docker-compose.yml mentions zookeeper; the stack runs Kafka in KRaft mode"
    )
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "").lower() == "false", (
        "kafka must not auto-create topics: the services create theirs explicitly"
    )


@pytest.mark.parametrize("name", sorted(REFUND_SERVICES))
def test_refund_service_command(services: dict[str, dict[str, Any]], name: str) -> None:
    argv = _as_argv(services[name].get("command", ""))
    expected = ["python", "-m", f"services.{name}"]
    assert argv[:3] == expected, f"{name}: command must run `{' '.join(expected)}`, got {argv!r}"


@pytest.mark.parametrize("name", sorted(REFUND_SERVICES))
def test_refund_service_environment(services: dict[str, dict[str, Any]], name: str) -> None:
    env = _environment(services[name])
    database_url = env.get("REFUNDS_DATABASE_URL", "")
    assert re.match(r"postgres(ql)?(\+\w+)?://[^@/]*@postgres(:\d+)?/", database_url), (
        f"{name}: REFUNDS_DATABASE_URL must point at the `postgres` service, got {database_url!r}"
    )
    bootstrap = env.get("REFUNDS_KAFKA_BOOTSTRAP")
    assert bootstrap == "kafka:9092", (
        f"{name}: REFUNDS_KAFKA_BOOTSTRAP must be `kafka:9092`, got {bootstrap!r}"
    )
    port = env.get("REFUNDS_PORT")
    assert port == str(REFUND_SERVICES[name]), (
        f"{name}: REFUNDS_PORT must be {REFUND_SERVICES[name]}, got {port!r}"
    )


@pytest.mark.parametrize("name", sorted(REFUND_SERVICES))
def test_refund_service_healthcheck_hits_own_readyz(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    test = _as_text(healthcheck.get("test", ""))
    port = REFUND_SERVICES[name]
    assert re.search(rf"(127\.0\.0\.1|localhost):{port}/readyz\b", test), (
        f"{name}: healthcheck test must request its own port's /readyz "
        f"(http://127.0.0.1:{port}/readyz), got {test!r}"
    )


@pytest.mark.parametrize("name", sorted(REFUND_SERVICES))
def test_refund_service_waits_for_healthy_infrastructure(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    deps = _depends_on(services[name])
    required = ["kafka", "postgres"]
    if name in EXTRA_DEPENDENCIES:
        required.append(EXTRA_DEPENDENCIES[name])
    for dependency in required:
        assert dependency in deps, f"{name}: depends_on must include {dependency}"
        condition = deps[dependency].get("condition")
        assert condition == "service_healthy", (
            f"{name}: depends_on {dependency} must use `condition: service_healthy`, "
            f"got {condition!r}"
        )


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    without = sorted(
        name
        for name, service in services.items()
        if not (service.get("healthcheck") or {}).get("test")
        or (service.get("healthcheck") or {}).get("disable")
    )
    assert not without, f"services without a healthcheck test: {without}"


def test_no_service_enables_postgres_db_functions(services: dict[str, dict[str, Any]]) -> None:
    offenders = sorted(
        name
        for name, service in services.items()
        if "POSTGRES_ENABLE_DB_FUNCTIONS" in _environment(service)
    )
    assert not offenders, (
        f"POSTGRES_ENABLE_DB_FUNCTIONS is set for {offenders}; it silently breaks the ordered log"
    )


def test_build_uses_deploy_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    builds = {name: service["build"] for name, service in services.items() if "build" in service}
    assert builds, "no service in docker-compose.yml builds the application image"
    for name, build in builds.items():
        assert isinstance(build, dict), (
            f"{name}: build must be a mapping naming `dockerfile: deploy/Dockerfile`"
        )
        assert build.get("dockerfile") == "deploy/Dockerfile", (
            f"{name}: build.dockerfile must be deploy/Dockerfile, got {build.get('dockerfile')!r}"
        )
        context = (REPO_ROOT / str(build.get("context", "."))).resolve()
        assert context == REPO_ROOT, (
            f"{name}: build.context must be the repository root, got {build.get('context')!r}"
        )
    images = {services[name].get("image") for name in REFUND_SERVICES}
    assert len(images) == 1, (
        f"the refund services must share one image, got {sorted(map(str, images))}"
    )


def test_dockerfile_base_image(dockerfile_lines: list[str]) -> None:
    froms = [line.split()[1] for line in dockerfile_lines if line.upper().startswith("FROM ")]
    assert froms, "deploy/Dockerfile has no FROM line"
    assert dockerfile_lines[0].upper().startswith("FROM "), (
        f"deploy/Dockerfile must start with FROM, starts with {dockerfile_lines[0]!r}"
    )
    wrong = [image for image in froms if not image.startswith("python:3.11")]
    assert not wrong, f"deploy/Dockerfile must build FROM python:3.11 images, found {wrong}"


def test_dockerfile_installs_project_with_pip(dockerfile_lines: list[str]) -> None:
    runs = [line for line in dockerfile_lines if line.upper().startswith("RUN ")]
    assert any(re.search(r"\bpip install\b[^&;|]*\s\.(\s|$)", run) for run in runs), (
        "deploy/Dockerfile must install the project with `pip install .`"
    )
    assert not any("[test]" in run or " -e " in run for run in runs), (
        "deploy/Dockerfile must not install the test extras or an editable install"
    )


def test_dockerfile_does_not_run_as_root(dockerfile_lines: list[str]) -> None:
    users = [
        line.split(maxsplit=1)[1] for line in dockerfile_lines if line.upper().startswith("USER ")
    ]
    assert users, "deploy/Dockerfile has no USER line, so the image runs as root"
    final_user = users[-1].split(":", 1)[0]
    assert final_user not in {"root", "0"}, (
        f"deploy/Dockerfile's last USER is {users[-1]!r}; it must not run as root"
    )


# -- sign-in: Keycloak, its realm and the console ------------------------------------------------

REALM_FILE = REPO_ROOT / "deploy" / "keycloak" / "refunds-realm.json"
CONSOLE_PORT = 8005


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    assert REALM_FILE.is_file(), f"{REALM_FILE} is missing"
    data: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    return data


def _console_client(realm: dict[str, Any]) -> dict[str, Any]:
    clients = [c for c in realm["clients"] if c["clientId"] == "refunds-console"]
    assert len(clients) == 1, "the realm must hold exactly one `refunds-console` client"
    return clients[0]


def test_keycloak_is_pinned_and_imports_the_realm(services: dict[str, dict[str, Any]]) -> None:
    keycloak = services["keycloak"]
    image = str(keycloak["image"])
    assert re.fullmatch(r"quay\.io/keycloak/keycloak:\d+\.\d+\.\d+", image), (
        f"keycloak's image must be pinned to a version, got {image!r}"
    )
    argv = _as_argv(keycloak["command"])
    assert argv[0] == "start-dev" and "--import-realm" in argv
    mounts = [str(volume) for volume in keycloak.get("volumes", [])]
    assert any(
        m.split(":")[0] == "./deploy/keycloak" and m.split(":")[1] == "/opt/keycloak/data/import"
        for m in mounts
    ), f"keycloak must mount deploy/keycloak at /opt/keycloak/data/import, got {mounts}"
    # Every ${PLACEHOLDER} of the realm file is given to keycloak.
    env = _environment(keycloak)
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", REALM_FILE.read_text(encoding="utf-8")))
    assert placeholders and placeholders <= env.keys(), sorted(placeholders - env.keys())


def test_the_realm_roles_are_the_staff_roles(realm: dict[str, Any]) -> None:
    from shared.staff_tokens import STAFF_ROLES

    assert realm["realm"] == "refunds"
    assert [role["name"] for role in realm["roles"]["realm"]] == list(STAFF_ROLES)


def test_the_realm_holds_the_demo_staff_with_their_roles(realm: dict[str, Any]) -> None:
    from sandbox.identity.people import PEOPLE

    users = {user["username"]: user for user in realm["users"]}
    assert users.keys() == PEOPLE.keys()
    for name, person in PEOPLE.items():
        assert users[name]["realmRoles"] == list(person.roles), name
        assert users[name]["enabled"] and not users[name]["requiredActions"], name
        assert users[name]["attributes"]["locale"] == [person.locale], name


def test_the_console_client_is_confidential_with_pkce_and_the_refunds_audience(
    realm: dict[str, Any],
) -> None:
    client = _console_client(realm)
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["implicitFlowEnabled"] is False and client["directAccessGrantsEnabled"] is False
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    audiences = [
        mapper["config"]["included.custom.audience"]
        for mapper in client["protocolMappers"]
        if mapper["protocolMapper"] == "oidc-audience-mapper"
        and mapper["config"].get("access.token.claim") == "true"
    ]
    assert audiences == ["refunds"]


def test_the_console_redirect_matches_its_port(
    services: dict[str, dict[str, Any]], realm: dict[str, Any]
) -> None:
    console = services["console"]
    assert _as_argv(console["command"])[:3] == ["python", "-m", "services.console"]
    assert console.get("image") == services["intake"].get("image"), "one image for all apps"
    env = _environment(console)
    assert env["REFUNDS_PORT"] == str(CONSOLE_PORT)
    assert f"{CONSOLE_PORT}:{CONSOLE_PORT}" in [str(p) for p in console["ports"]]
    assert env["REFUNDS_CONSOLE_URL"].endswith(f":{CONSOLE_PORT}")
    client = _console_client(realm)
    assert env["REFUNDS_CONSOLE_URL"] + "/auth/callback" in client["redirectUris"]
    assert env["REFUNDS_CONSOLE_URL"] + "/" in client["attributes"][
        "post.logout.redirect.uris"
    ].split("##")
    assert env["REFUNDS_OIDC_CLIENT_ID"] == client["clientId"]
    # The console and Keycloak read the same client secret.
    assert (
        env["REFUNDS_OIDC_CLIENT_SECRET"]
        == _environment(services["keycloak"])["REFUNDS_CONSOLE_CLIENT_SECRET"]
    )
    for name, port in REFUND_SERVICES.items():
        assert env[f"REFUNDS_{name.upper()}_URL"] == f"http://{name}:{port}"
    deps = _depends_on(console)
    for dependency in ("keycloak", *REFUND_SERVICES):
        assert deps[dependency].get("condition") == "service_healthy", dependency


def test_every_oidc_variable_is_one_the_settings_know(
    services: dict[str, dict[str, Any]],
) -> None:
    from shared.settings import StaffSettings

    known = {name for name in StaffSettings.model_fields if name.startswith("oidc_")}
    # The console's own: the client it signs in as (services/console reads them).
    console_known = known | {"oidc_client_id", "oidc_client_secret"}
    issuer = f"http://keycloak:8080/realms/{json_realm_name()}"
    for name, service in services.items():
        env = _environment(service)
        used = {
            key.removeprefix("REFUNDS_").lower() for key in env if key.startswith("REFUNDS_OIDC_")
        }
        allowed = console_known if name == "console" else known
        assert used <= allowed, f"{name}: unknown settings {sorted(used - allowed)}"
        if name in REFUND_SERVICES:
            assert env["REFUNDS_OIDC_ISSUER"] == issuer, name
            assert env["REFUNDS_OIDC_ROLES_CLAIM"] == "realm_access.roles", name
            assert env["REFUNDS_OIDC_AUDIENCE"] == "refunds", name
            # And the values pass the settings' validation.
            StaffSettings(env="test", **{key: env[f"REFUNDS_{key.upper()}"] for key in used})
    hostname = _environment(services["keycloak"])["KC_HOSTNAME"]
    assert issuer.startswith(hostname + "/realms/"), "the issuer must be Keycloak's hostname"


def json_realm_name() -> str:
    return str(json.loads(REALM_FILE.read_text(encoding="utf-8"))["realm"])

"""The Kubernetes manifests (deploy/k8s), checked offline.

Neither kustomize nor a cluster is needed: `render` below is a small renderer of the part of
kustomize the manifests use (resources, namespace, images, strategic-merge patches by path,
`$patch: delete`), and refuses any other kustomization field rather than ignore what kubectl
would apply. Each rendered document is validated against the Kubernetes JSON schemas that
`kubernetes-validate` ships; then the documents are checked against each other and against
the services' own settings classes, so a missing or refused variable fails here, not in a pod.
Every failure names the file it came from and the problem.
"""

from __future__ import annotations

import base64
import copy
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from services.console.settings import ConsoleSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.payout.settings import PayoutSettings
from services.review.settings import ReviewSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
BASE, PRODUCTION = K8S / "base", K8S / "overlays" / "production"
# The oldest Kubernetes the manifests claim (docs/kubernetes.md) and the newest schemas shipped.
VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
SETTINGS: dict[str, type[BaseModel]] = {
    "intake": IntakeSettings,
    "review": ReviewSettings,
    "payout": PayoutSettings,
    "notify": NotifySettings,
    "console": ConsoleSettings,
}
NO_BACKGROUND_ROLES = {"console"}  # its inherited relay/consumer switches drive nothing
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEYS?$|DATABASE_URL")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]+:[^/@\s]*@")


class RenderError(Exception):
    pass


@dataclass
class Resource:
    origin: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name"))

    def where(self) -> str:
        return f"{self.origin.relative_to(K8S.parent.parent)}: {self.kind}/{self.name}"


def _documents(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise RenderError(f"{path}: no such file")
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    except yaml.YAMLError as error:
        raise RenderError(f"{path}: not YAML: {error}") from None
    if not all(isinstance(doc, dict) for doc in docs):
        raise RenderError(f"{path}: a document is not a mapping")
    return docs


def render(folder: Path, used: set[Path] | None = None) -> list[Resource]:
    """The resources `kubectl kustomize folder` gives, for the fields listed above."""
    used = used if used is not None else set()
    file = folder / "kustomization.yaml"
    (spec,) = _documents(file) or [{}]
    used.add(file)
    for unknown in sorted(set(spec) - KUSTOMIZATION_FIELDS):
        raise RenderError(f"{file}: field `{unknown}` is not supported by this renderer")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            resources += render(path, used)
        else:
            used.add(path)
            resources += [Resource(path, doc) for doc in _documents(path)]
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{file}: only `patches: - path: FILE` is supported, got {patch}")
        path = (folder / patch["path"]).resolve()
        used.add(path)
        for doc in _documents(path):
            resources = _apply_patch(resources, doc, path)
    for image in spec.get("images", []):
        for resource in resources:
            _set_image(resource.body, image)
    if "namespace" in spec:
        for resource in resources:
            if resource.kind not in CLUSTER_SCOPED:
                resource.body.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return resources


def _apply_patch(resources: list[Resource], patch: dict[str, Any], path: Path) -> list[Resource]:
    """A strategic-merge patch: its target is the resource of the same kind and name."""
    name = patch.get("metadata", {}).get("name")
    targets = [r for r in resources if r.kind == patch.get("kind") and r.name == name]
    if len(targets) != 1:
        raise RenderError(f"{path}: patch of {patch.get('kind')}/{name} matches {len(targets)}")
    (target,) = targets
    if patch.get("$patch") == "delete":
        return [r for r in resources if r is not target]
    body = {key: value for key, value in patch.items() if key not in {"apiVersion", "kind"}}
    _merge(target.body, body, path)
    return resources


def _merge(base: dict[str, Any], patch: dict[str, Any], path: Path) -> None:
    for key, value in patch.items():
        if key.startswith("$"):
            raise RenderError(f"{path}: directive {key} is not supported inside a patch")
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, path)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(base.get(key), list):
            merge_key = MERGE_KEYS[key]
            items = base[key]
            for item in value:
                same = [old for old in items if old.get(merge_key) == item.get(merge_key)]
                if same:
                    _merge(same[0], item, path)
                else:
                    items.append(copy.deepcopy(item))
        else:
            base[key] = copy.deepcopy(value)


def _set_image(body: dict[str, Any], image: dict[str, str]) -> None:
    pod = body.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, tag = _split_image(container.get("image", ""))
        if name == image["name"]:
            name = image.get("newName", name)
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _split_image(image: str) -> tuple[str, str]:
    head, colon, tag = image.rpartition(":")
    if colon and "/" not in tag:  # a registry's port is followed by a path, a tag is not
        return head, tag
    return image, ""


# --- the renderer's own tests: each pins behaviour kustomize has that the checks rely on


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry:5000/team/app:old
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
        - {name: side, image: side:1}
"""


def test_renderer_merges_lists_by_key_sets_images_and_namespace(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"base/kustomization.yaml": "resources: [app.yaml]\n", "base/app.yaml": DEPLOYMENT},
    )
    _write(
        tmp_path,
        {
            "over/kustomization.yaml": "namespace: prod\nresources: [../base, ns.yaml]\n"
            "images: [{name: registry:5000/team/app, newName: r.example/app, newTag: '2'}]\n"
            "patches: [{path: patch.yaml}]\n",
            "over/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
            "over/patch.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            "spec: {template: {spec: {containers: [{name: app, env: [{name: B, value: '3'}]}]}}}\n",
        },
    )
    web, namespace = render(tmp_path / "over")
    containers = web.body["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "side"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert containers[0]["image"] == "r.example/app:2"
    assert containers[1]["image"] == "side:1"
    assert web.body["metadata"]["namespace"] == "prod"
    assert "namespace" not in namespace.body["metadata"]


def test_renderer_deletes_and_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(DEPLOYMENT)
    (tmp_path / "gone.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n$patch: delete\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [app.yaml]\npatches: [{path: gone.yaml}]\n"
    )
    assert render(tmp_path) == []
    (tmp_path / "kustomization.yaml").write_text("resources: [app.yaml]\nnamePrefix: x-\n")
    with pytest.raises(RenderError, match=r"kustomization\.yaml: field `namePrefix`"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [app.yaml]\npatches: [{path: miss.yaml}]\n"
    )
    (tmp_path / "miss.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    with pytest.raises(RenderError, match=r"miss.yaml: patch of Service/web matches 0"):
        render(tmp_path)


# --- the manifests


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(BASE)


@pytest.fixture(scope="module")
def production() -> list[Resource]:
    return render(PRODUCTION)


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


def test_every_file_is_used_and_every_document_matches_the_kubernetes_schemas() -> None:
    used: set[Path] = set()
    problems = []
    for folder in (BASE, PRODUCTION):
        for resource in render(folder, used):
            for version in VERSIONS:
                try:
                    kubernetes_validate.validate(resource.body, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    at = ".".join(str(p) for p in error.path)
                    problems.append(
                        f"{resource.where()}: {at}: {error.message} "
                        f"(Kubernetes {version}, rendering {folder.relative_to(K8S)})"
                    )
                except kubernetes_validate.utils.SchemaNotFoundError:
                    problems.append(f"{resource.where()}: no schema for it in {version}")
    for path in sorted(K8S.rglob("*.yaml")):
        if path.resolve() not in used:
            problems.append(f"{path.relative_to(K8S)}: listed in no kustomization.yaml")
    assert not problems, "\n".join(problems)


def _pods(resources: list[Resource]) -> Iterator[tuple[Resource, dict[str, Any], str]]:
    """Each Deployment with its container and its service (app.kubernetes.io/name)."""
    for deployment in (r for r in resources if r.kind == "Deployment"):
        (container,) = deployment.body["spec"]["template"]["spec"]["containers"]
        yield deployment, container, deployment.body["metadata"]["labels"]["app.kubernetes.io/name"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _deployment_problems(resources: list[Resource], deployment: Resource) -> list[str]:
    where = deployment.where()
    spec = deployment.body["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    (container,) = pod["containers"]
    port = container["ports"][0]
    problems = []
    if not _selects(spec["selector"]["matchLabels"], labels):
        problems.append(f"{where}: its selector does not select its own pods")
    for label in ("name", "instance", "component", "part-of"):
        if f"app.kubernetes.io/{label}" not in labels:
            problems.append(f"{where}: pods lack the label app.kubernetes.io/{label}")
    services = [
        r for r in resources if r.kind == "Service" and _selects(r.body["spec"]["selector"], labels)
    ]
    if not any(
        p.get("targetPort") in (port["name"], port["containerPort"])
        for s in services
        for p in s.body["spec"]["ports"]
    ):
        problems.append(f"{where}: no Service selects it on its container port")
    budgets = [
        r
        for r in resources
        if r.kind == "PodDisruptionBudget"
        and _selects(r.body["spec"]["selector"].get("matchLabels", {}), labels)
    ]
    if len(budgets) != 1 or budgets[0].body["spec"].get("maxUnavailable", 1) != 1:
        problems.append(f"{where}: needs exactly one PodDisruptionBudget, maxUnavailable 1")
    autoscalers = [
        r
        for r in resources
        if r.kind == "HorizontalPodAutoscaler"
        and r.body["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.name}
    ]
    if labels["app.kubernetes.io/component"] == "worker":
        if autoscalers or spec["replicas"] != 1 or spec["strategy"]["type"] != "Recreate":
            problems.append(f"{where}: a worker is one replica, Recreate, never autoscaled")
    elif len(autoscalers) != 1 or not any(
        m.get("resource", {}).get("name") == "cpu" for m in autoscalers[0].body["spec"]["metrics"]
    ):
        problems.append(f"{where}: needs one HorizontalPodAutoscaler on CPU")
    elif spec["replicas"] < 3 or autoscalers[0].body["spec"]["minReplicas"] < 3:
        problems.append(f"{where}: the API runs at least 3 replicas")
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in (port["name"], port["containerPort"]):
            problems.append(f"{where}: {probe} must GET {path} on the container port")
    security = container.get("securityContext", {})
    if not (
        security.get("readOnlyRootFilesystem")
        and security.get("runAsNonRoot")
        and security.get("allowPrivilegeEscalation") is False
        and pod.get("securityContext", {}).get("runAsNonRoot")
    ):
        problems.append(f"{where}: must run as non-root on a read-only root filesystem")
    if not pod.get("topologySpreadConstraints"):
        problems.append(f"{where}: pods are not spread across nodes")
    if not {"requests", "limits"} <= set(container.get("resources", {})):
        problems.append(f"{where}: needs resource requests and limits")
    return problems


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_deployment_has_its_service_budget_autoscaler_and_probes(folder: Path) -> None:
    resources = render(folder)
    deployments = [r for r in resources if r.kind == "Deployment"]
    assert {d.name for d in deployments} >= set(SETTINGS), f"{folder}: a service has no Deployment"
    problems = [p for d in deployments for p in _deployment_problems(resources, d)]
    assert not problems, "\n".join(problems)


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


def test_production_applies_no_secret_and_routes_only_the_public_parts(
    production: list[Resource], monkeypatch: pytest.MonkeyPatch
) -> None:
    where = {r.kind: r for r in production}
    assert "Secret" not in where, "production overlay: would overwrite refunds-secrets on apply"
    namespace = where["Namespace"].name
    problems = [
        f"{r.where()}: not in namespace {namespace}"
        for r in production
        if r.kind != "Namespace" and r.body["metadata"].get("namespace") != namespace
    ]
    for deployment, container, _ in _pods(production):
        if container["image"].endswith((":local", ":latest")) or ":" not in container["image"]:
            problems.append(f"{deployment.where()}: image {container['image']} is not a release")
    ingress = where["Ingress"]
    routes = {
        (rule["host"], path["path"]): path["backend"]["service"]["name"]
        for rule in ingress.body["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    tls_hosts = {h for tls in ingress.body["spec"].get("tls", []) for h in tls["hosts"]}
    problems += [
        f"{ingress.where()}: {host} has no TLS" for host, _ in routes if host not in tls_hosts
    ]
    maps = {r.name: r.body["data"] for r in production if r.kind == "ConfigMap"}
    public = maps["refunds-payout"]["REFUNDS_PUBLIC_URL"]
    console = maps["refunds-console"]["REFUNDS_CONSOLE_URL"]
    wanted = {
        (public.split("/")[2], "/v1/providers"): "payout",
        (console.split("/")[2], "/"): "console",
        **{(host, "/"): "intake" for (host, _), svc in routes.items() if svc == "intake"},
    }
    if routes != wanted:
        problems.append(f"{ingress.where()}: routes {routes}, expected {wanted}")
    if not public.startswith("https://"):
        problems.append("overlays/production/config.yaml: REFUNDS_PUBLIC_URL must be https")
    assert not problems, "\n".join(problems)

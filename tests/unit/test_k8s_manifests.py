"""The Kubernetes manifests (deploy/k8s), checked offline: every file used and every rendered
document valid against the Kubernetes JSON schemas that `kubernetes-validate` ships, every
Deployment with its Service, budget, autoscaler and probes, and the production overlay
applying no Secret and routing only the public parts. Every failure names the file it came
from and the problem.

The renderer is in tests/support/k8s_manifests.py (its own tests in test_k8s_renderer.py);
each pod's environment and the ConfigMaps are checked in test_k8s_environment.py.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from tests.support.k8s_manifests import (
    BASE,
    K8S,
    PRODUCTION,
    SETTINGS,
    VERSIONS,
    Resource,
    _pods,
    render,
)

# --- the manifests


@pytest.fixture(scope="module")
def production() -> list[Resource]:
    return render(PRODUCTION)


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

"""The Kubernetes manifests (deploy/k8s) rendered offline, for the tests of
tests/unit/test_k8s_*.py.

Neither kustomize nor a cluster is needed: `render` below is a small renderer of the part of
kustomize the manifests use (resources, namespace, images, strategic-merge patches by path,
`$patch: delete`), and refuses any other kustomization field rather than ignore what kubectl
would apply. Also here: the folders, the Kubernetes versions validated against, each
service's settings class, the names a secret goes by, and each Deployment's pod.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from pydantic import BaseModel

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


def _pods(resources: list[Resource]) -> Iterator[tuple[Resource, dict[str, Any], str]]:
    """Each Deployment with its container and its service (app.kubernetes.io/name)."""
    for deployment in (r for r in resources if r.kind == "Deployment"):
        (container,) = deployment.body["spec"]["template"]["spec"]["containers"]
        yield deployment, container, deployment.body["metadata"]["labels"]["app.kubernetes.io/name"]

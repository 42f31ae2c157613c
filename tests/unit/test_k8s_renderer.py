"""The small kustomize renderer the manifest tests use (tests/support/k8s_manifests.py): each
test pins behaviour kustomize has that the checks rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.k8s_manifests import RenderError, render

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

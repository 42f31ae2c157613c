"""Review's staff API over SQLite and PostgreSQL: policy versions (published by an admin,
used by later requests, validated, each version still answering its document)."""

from __future__ import annotations

import copy

from tests.support.review_api import (
    ADMIN,
    ANN,
    AUDITOR,
    WANG,
    Review,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name)
    staff,
)

# -- policies -------------------------------------------------------------------------------------


def test_an_admin_publishes_a_policy_that_later_requests_use(review: Review) -> None:
    listed = review.client.get("/v1/policies", headers=ANN).json()
    assert listed["current"] == "2026-11-01"
    assert [(v["version"], v["by"], v["current"]) for v in listed["data"]] == [
        ("2026-11-01", "system:shipped", True)
    ]
    before = review.request(800)
    assert review.case(before)["state"] == "pending"

    document = review.client.get("/v1/policies/current", headers=AUDITOR).json()
    assert document["version"] == "2026-11-01"
    document["version"] = "2026-12-01"
    document["auto_approval"]["limit"]["default"] = "1000.00"
    published = review.client.post("/v1/policies", json=document, headers=ADMIN)
    assert published.status_code == 201, published.text
    assert published.json()["version"] == "2026-12-01" and published.json()["by"] == "root"
    assert published.json()["current"] is True

    after = review.case(review.request(800))
    assert after["policy_version"] == "2026-12-01"
    assert after["state"] == "approved" and after["rule"] == "auto_approve.within_limit"
    assert review.case(before)["policy_version"] == "2026-11-01"
    versions = review.client.get("/v1/policies", headers=AUDITOR).json()
    assert versions["current"] == "2026-12-01"
    assert [v["current"] for v in versions["data"]] == [False, True]

    problem(review.client.post("/v1/policies", json=document, headers=ADMIN), 409, "version-exists")


def test_only_admins_publish_policies(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    document["version"] = "2026-12-02"
    for headers in (ANN, WANG, AUDITOR):
        problem(
            review.client.post("/v1/policies", json=document, headers=headers), 403, "forbidden"
        )
    problem(review.client.get("/v1/policies", headers=staff("fin", "finance")), 403, "forbidden")


def test_a_broken_policy_is_422_naming_the_field(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    broken = copy.deepcopy(document)
    broken["version"] = "2026-12-03"
    broken["sla"]["review_business_days"] = 0
    del broken["explanations"]["manual.risk"]
    refused = problem(
        review.client.post("/v1/policies", json=broken, headers=ADMIN), 422, "validation"
    )
    fields = {e["field"]: e["code"] for e in refused["errors"]}
    assert fields["sla.review_business_days"] == "greater_than"
    assert "explanations" in fields
    assert review.client.get("/v1/policies", headers=ADMIN).json()["current"] == "2026-11-01"


def test_each_published_version_answers_its_document(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    shipped = review.client.get(f"/v1/policies/{document['version']}", headers=AUDITOR)
    assert shipped.status_code == 200 and shipped.json() == document
    newer = {**document, "version": "2026-12-04"}
    assert review.client.post("/v1/policies", json=newer, headers=ADMIN).status_code == 201
    assert review.client.get("/v1/policies/2026-12-04", headers=ADMIN).json() == newer
    old = review.client.get(f"/v1/policies/{document['version']}", headers=ADMIN).json()
    assert old == document  # an older version still answers as it was published
    problem(review.client.get("/v1/policies/1999-01-01", headers=ADMIN), 404, "not-found")
    finance = staff("fin", "finance")
    problem(review.client.get("/v1/policies/2026-12-04", headers=finance), 403, "forbidden")

"""Schemathesis fuzz of intake's whole OpenAPI (tests/support/fuzz.py says how).

Real refunds are seeded per operation, so actions on an id meet real state, and a run of
schema-valid refunds with fuzzed free text reaches the 201 path. Runs are derandomized,
but Hypothesis also draws constants from the project modules loaded at the time, so the
data differ somewhat with which tests are collected.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import APIOperation, Case

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from tests.support.factories import refund_body
from tests.support.fuzz import Run, fuzz_api

pytestmark = [pytest.mark.slow]

API_KEY = "sk_fuzz_0123456789abcdefghijklmn"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TARGET_CASES = 2000  # spread over the operations with inputs to set max_examples
SEEDED = 4  # real refunds per operation, so actions on an id meet real state, not only 404


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[FastAPI]:
    service = build(
        IntakeSettings(
            env="test",
            data_dir=tmp_path,
            relay_enabled=False,
            consumer_enabled=False,
            api_keys=f"fuzz:{API_KEY}",
        )
    )
    yield service.http
    service.close()


class RealRefunds:
    """Fresh refunds of the fuzz tenant for each operation: a withdraw fuzzed first would
    otherwise leave the evidence and appeal operations only withdrawn refunds."""

    def __init__(self, app: FastAPI) -> None:
        self.client = TestClient(app, headers=AUTH)
        self.made: dict[str, list[str]] = {}

    def for_operation(self, label: str) -> list[str]:
        if label not in self.made:
            self.made[label] = []
            for _ in range(SEEDED):
                response = self.client.post("/v1/refunds", json=refund_body())
                assert response.status_code == 201, response.text
                self.made[label].append(response.json()["id"])
        return self.made[label]


ORDER_NUMBERS = itertools.count()


@st.composite
def odd_valid_refund(draw: st.DrawFn) -> dict[str, Any]:
    """A refund the business rules accept, with fuzzed free text: the 201 path (stored,
    then listed and read back by the later operations) sees more than the one example."""
    text = st.text(min_size=1, max_size=60)
    body = refund_body(draw(st.integers(min_value=1, max_value=10**9)))
    sku = draw(text)
    body["order"]["id"] = f"{draw(text)}-{next(ORDER_NUMBERS)}"  # a new order each time
    body["order"]["customer_id"] = draw(text)
    body["order"]["items"][0].update(sku=sku, name=draw(text), category=draw(text))
    body["items"][0]["sku"] = sku
    body["description"] = draw(st.text(max_size=300))
    body["metadata"] = draw(
        st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=200), max_size=5)
    )
    return body


def as_case(operation: APIOperation) -> Callable[[dict[str, Any]], Case]:
    def case(body: dict[str, Any]) -> Case:
        return operation.Case(body=body, headers=dict(AUTH), media_type="application/json")

    return case


def test_fuzz_intake_openapi(intake: FastAPI) -> None:
    real = RealRefunds(intake)

    def with_real_refund(case: Case) -> None:
        generated = (case.path_parameters or {}).get("refund_id")
        if generated is not None:
            # Half the generated ids (chosen by value, so runs repeat) become a real refund.
            pick = zlib.crc32(str(generated).encode())
            if pick % 2 == 0:
                ids = real.for_operation(case.operation.label)
                case.path_parameters["refund_id"] = ids[pick // 2 % len(ids)]

    def odd_text_refunds(operation: APIOperation, per_run: int) -> list[Run]:
        if operation.label != "POST /v1/refunds":
            return []
        return [("valid, odd text", odd_valid_refund().map(as_case(operation)), per_run)]

    fuzz_api(
        intake,
        target_cases=TARGET_CASES,
        auth=lambda path: AUTH,
        prepare=with_real_refund,
        extra_runs=odd_text_refunds,
    )

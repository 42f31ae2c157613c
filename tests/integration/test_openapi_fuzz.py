"""Schemathesis fuzz of intake's whole OpenAPI: every operation the schema lists, in-process.

Each generated request (the schema's examples, then valid and invalid data, always
authenticated) must get an answer the schema documents: no 5xx, a documented status,
content type, body schema and headers. Business rules rightly reject some schema-valid
input with 422, so the data acceptance/rejection checks are not used.

One test drives every operation through Hypothesis itself (`operation.as_strategy()`),
rather than `@schema.parametrize()`: with pytest 9.2 schemathesis' items share one node
id, so pytest-xdist runs only one of them, and its fixture-based lazy schemas fail.
A single test also counts its cases and reports every failing operation at once;
run with `-s` to see cases, seconds and statuses per operation.

Runs are derandomized, but Hypothesis also draws constants from the project modules
loaded at the time, so the data differ somewhat with which tests are collected.
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from tests.support.factories import refund_body

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzz")]

API_KEY = "sk_fuzz_0123456789abcdefghijklmn"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MIN_CASES = 1000  # generated requests across all operations, at least
TARGET_CASES = 2000  # spread over the operations with inputs to set max_examples
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
SEEDED = 4  # real refunds per operation, so actions on an id meet real state, not only 404
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
HYPOTHESIS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no database; no `explain` noise
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


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


def has_inputs(operation: APIOperation) -> bool:
    named = [p for p in operation.headers if p.name.lower() != "authorization"]
    return bool(len(operation.body) or operation.path_parameters or operation.query or named)


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


def run_cases(strategy: st.SearchStrategy[Case], count: int, check: Callable[[Case], None]) -> None:
    @settings(HYPOTHESIS, max_examples=count)
    @given(case=strategy)
    def fuzz(case: Case) -> None:
        check(case)

    fuzz()


def test_fuzz_intake_openapi(intake: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", intake)
    loaded = list(schema.get_all_operations())
    broken = [str(result.err()) for result in loaded if not isinstance(result, Ok)]
    assert not broken, broken
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    fuzzable = [operation for operation in operations if has_inputs(operation)]
    per_run = math.ceil(TARGET_CASES / (max(len(fuzzable), 1) * len(MODES)))
    real = RealRefunds(intake)
    calls: Counter[str] = Counter()
    statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)

    def check(case: Case) -> None:
        case.headers["Authorization"] = AUTH["Authorization"]  # examples carry none
        generated = (case.path_parameters or {}).get("refund_id")
        if generated is not None:
            # Half the generated ids (chosen by value, so runs repeat) become a real refund.
            pick = zlib.crc32(str(generated).encode())
            if pick % 2 == 0:
                ids = real.for_operation(case.operation.label)
                case.path_parameters["refund_id"] = ids[pick // 2 % len(ids)]
        calls[case.operation.label] += 1
        response = case.call_and_validate(checks=CHECKS)  # a failure notes its curl command
        statuses[case.operation.label][response.status_code] += 1

    failures: dict[str, str] = {}
    spent: defaultdict[str, float] = defaultdict(float)  # seconds per operation
    # Negative data may not exist (any string is a valid unconstrained path parameter).
    unsatisfiable: list[str] = []
    started = time.monotonic()
    for operation in operations:
        runs: list[tuple[str, st.SearchStrategy[Case], int]] = [
            (f"example {i}", strategy, 5)
            for i, strategy in enumerate(schema.get_strategies_from_examples(operation))
        ]
        if has_inputs(operation):
            runs += [
                (mode.value, operation.as_strategy(generation_mode=mode, headers=AUTH), per_run)
                for mode in MODES
            ]
        else:
            runs.append(("positive", operation.as_strategy(headers=AUTH), 1))
        if operation.label == "POST /v1/refunds":
            runs.append(("valid, odd text", odd_valid_refund().map(as_case(operation)), per_run))
        for name, strategy, count in runs:
            run_started = time.monotonic()
            try:
                run_cases(strategy, count, check)
            except Unsatisfiable as error:
                if name != GenerationMode.NEGATIVE.value:
                    failures[f"{operation.label} [{name}]"] = f"no valid request: {error}"
                unsatisfiable.append(f"{operation.label} [{name}]")
            except Exception as error:
                notes = "\n".join(getattr(error, "__notes__", []))
                failures[f"{operation.label} [{name}]"] = (
                    f"{type(error).__name__}: {error}\n{notes}"
                )
            spent[operation.label] += time.monotonic() - run_started
    elapsed = time.monotonic() - started

    total = sum(calls.values())
    print(
        f"\nfuzzed {total} cases in {elapsed:.1f}s; no data could be generated for {unsatisfiable}"
    )
    for label, seen in statuses.items():
        print(
            f"  {label}: {calls[label]} cases in {spent[label]:.1f}s,"
            f" statuses {dict(sorted(seen.items()))}"
        )
    report = "\n\n".join(f"== {where}\n{text[:4000]}" for where, text in failures.items())
    assert not failures, f"{len(failures)} failing run(s):\n{report}"
    assert {operation.label for operation in operations} <= set(calls), calls
    assert total >= MIN_CASES, dict(calls)

"""Schemathesis over a service's whole OpenAPI, in-process, driven by Hypothesis itself.

Each generated request (the schema's examples, then valid and invalid data, always
authenticated) must get an answer the schema documents: no 5xx, a documented status,
content type, body schema and headers. Business rules rightly reject some schema-valid
input with 422, so the data acceptance/rejection checks are not used.

Operations are driven through `operation.as_strategy()` rather than
`@schema.parametrize()`: with pytest 9.2 schemathesis' items share one node id, so
pytest-xdist runs only one of them, and its fixture-based lazy schemas fail. One run
also counts its cases and reports every failing operation at once; run with `-s` to see
cases, seconds and statuses per operation.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MIN_CASES = 1000  # generated requests across all operations, at least
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
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
Run = tuple[str, st.SearchStrategy[Case], int]  # name, strategy, cases


def has_inputs(operation: APIOperation) -> bool:
    named = [p for p in operation.headers if p.name.lower() != "authorization"]
    return bool(len(operation.body) or operation.path_parameters or operation.query or named)


def run_cases(strategy: st.SearchStrategy[Case], count: int, check: Callable[[Case], None]) -> None:
    @settings(HYPOTHESIS, max_examples=count)
    @given(case=strategy)
    def fuzz(case: Case) -> None:
        check(case)

    fuzz()


def fuzz_api(
    http: FastAPI,
    *,
    target_cases: int,
    auth: Callable[[str], dict[str, str]],
    prepare: Callable[[Case], None] = lambda case: None,
    extra_runs: Callable[[APIOperation, int], list[Run]] = lambda operation, per_run: [],
) -> None:
    """Fuzz every operation of `http`; assert no failing run and at least MIN_CASES cases.

    `auth(path)` gives the headers a request to `path` authenticates with; `prepare` may
    put real ids into a generated case; `extra_runs` adds runs of one operation.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", http)
    loaded = list(schema.get_all_operations())
    broken = [str(result.err()) for result in loaded if not isinstance(result, Ok)]
    assert not broken, broken
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    fuzzable = [operation for operation in operations if has_inputs(operation)]
    per_run = math.ceil(target_cases / (max(len(fuzzable), 1) * len(MODES)))
    calls: Counter[str] = Counter()
    statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)

    def check(case: Case) -> None:
        case.headers.update(auth(case.operation.path))  # examples carry none
        prepare(case)
        calls[case.operation.label] += 1
        response = case.call_and_validate(checks=CHECKS)  # a failure notes its curl command
        statuses[case.operation.label][response.status_code] += 1

    failures: dict[str, str] = {}
    spent: defaultdict[str, float] = defaultdict(float)  # seconds per operation
    # Negative data may not exist (any string is a valid unconstrained path parameter).
    unsatisfiable: list[str] = []
    started = time.monotonic()
    for operation in operations:
        headers = auth(operation.path)
        runs: list[Run] = [
            (f"example {i}", strategy, 5)
            for i, strategy in enumerate(schema.get_strategies_from_examples(operation))
        ]
        if has_inputs(operation):
            runs += [
                (mode.value, operation.as_strategy(generation_mode=mode, headers=headers), per_run)
                for mode in MODES
            ]
        else:
            runs.append(("positive", operation.as_strategy(headers=headers), 1))
        runs += extra_runs(operation, per_run)
        for name, strategy, count in runs:
            run_started = time.monotonic()
            try:
                run_cases(strategy, count, check)
            except Unsatisfiable as error:
                if name != GenerationMode.NEGATIVE.value:
                    failures[f"{operation.label} [{name}]"] = f"no valid request: {error}"
                unsatisfiable.append(f"{operation.label} [{name}]")
            except (Exception, FailureGroup) as error:  # FailureGroup is no Exception
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

"""Review's rules and calendar are pure: their modules import only the standard library,
shared.money, shared.vocabulary and each other, never a framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FRAMEWORKS = {"fastapi", "aiokafka", "httpx", "psycopg", "pydantic", "starlette", "uvicorn"}


# The assessment (a pure function, split by what it decides) and the calendar: each may
# import only the standard library, shared.money and the others of this list.
PURE = [
    "assessment.py",
    "refund_facts.py",
    "refundable.py",
    "eligibility.py",
    "grading.py",
    "vocabulary.py",
    "calendar.py",
    "return_rules.py",
]


@pytest.mark.parametrize("module", PURE)
def test_rules_and_calendar_are_pure(module: str) -> None:
    """Only the stdlib and shared.money at run time; the policy type only for type checking."""
    tree = ast.parse((Path(__file__).parents[2] / "services" / "review" / module).read_text())
    imported = set()
    for node in tree.body:  # module level; `if TYPE_CHECKING:` blocks are skipped
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name.split(".")[0] for name in imported} & FRAMEWORKS
    assert imported <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "typing",
        "zoneinfo",
        "shared.money",
        "shared.vocabulary",
    } | {f"services.review.{pure.removesuffix('.py')}" for pure in PURE}

"""`refunds policies publish|list` against a real review staff API served by uvicorn (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import eventsourcing.application
import pytest

from refunds.cli import main
from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.support.sandbox_gateway import serving

SECRET = "cli-policies-test-secret-0123456789"
EXAMPLE = Path(__file__).parents[2] / "services" / "review" / "example_return_policy.yaml"


@pytest.fixture
def review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ReviewApplication]]:
    for name in ("REFUNDS_JWT_SECRET", "REFUNDS_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = ServiceSettings(env="test", data_dir=tmp_path)
    app = ReviewApplication(default_policy(), env=store_env(settings, "review"))
    app.record_shipped_policy()
    try:
        with serving(staff_api(app, ReviewQueue(app), StaffAuth(SECRET))) as url:
            yield url, app
    finally:
        app.close()


def token(*roles: str) -> str:
    return encode(staff_claims("root", list(roles), 600), SECRET)


def test_publish_turns_returns_on_once_and_list_shows_it_in_force(
    review: tuple[str, ReviewApplication], capsys: pytest.CaptureFixture[str]
) -> None:
    url, app = review
    assert app.policy.returns is None
    args = ["policies", "publish", str(EXAMPLE), "--url", url, "--token", token("admin")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Published policy 2027-01-01-returns (with returns)." in out
    assert app.policy.returns is not None and app.policy.version == "2027-01-01-returns"
    # The same file again (same derived key): the first publication, said so; one version.
    assert main(args) == 0
    assert "published before under this key" in capsys.readouterr().out
    assert [v["version"] for v in app.policy_versions()] == ["2026-11-01", "2027-01-01-returns"]

    assert main(["policies", "list", "--url", url, "--token", token("admin")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "PUBLISHED", "BY", "AT"]
    assert lines[1].split()[:2] == ["2026-11-01", "system:shipped"]
    assert lines[2].split()[:2] == ["2027-01-01-returns", "root"]
    assert lines[2].endswith("in force") and not lines[1].endswith("in force")
    assert main(["policies", "list", "--url", url, "--token", token("auditor"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"] == "2027-01-01-returns"


def test_an_invalid_file_is_refused_here_and_nothing_is_published(
    review: tuple[str, ReviewApplication], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, app = review
    broken = tmp_path / "broken.yaml"
    text = EXAMPLE.read_text().replace("ship_by_days: 7", "ship_by_days: 0")
    broken.write_text(text)
    assert main(["policies", "publish", str(broken), "--url", url, "--token", token("admin")]) == 2
    err = capsys.readouterr().err
    assert "is not a valid policy" in err and "ship_by_days" in err
    assert len(app.policy_versions()) == 1


def test_a_refusal_by_review_exits_2_naming_why(
    review: tuple[str, ReviewApplication], capsys: pytest.CaptureFixture[str]
) -> None:
    url, app = review
    args = ["policies", "publish", str(EXAMPLE), "--url", url]
    assert main([*args, "--token", token("reviewer")]) == 2
    assert "HTTP 403" in capsys.readouterr().err
    # The version in force again under another key: review refuses a version twice.
    assert main([*args, "--token", token("admin")]) == 0
    assert main([*args, "--token", token("admin"), "--key", "another"]) == 2
    assert "HTTP 409" in capsys.readouterr().err
    assert len(app.policy_versions()) == 2
    assert main([*args, "--url", "http://127.0.0.1:9", "--token", token("admin")]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_the_policy_in_force_is_read_without_copying_the_book(
    review: tuple[str, ReviewApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request decided asks for the policy: the book (every version ever published)
    is looked at in place, and the document parsed again only when another is in force."""
    url, app = review
    assert main(["policies", "publish", str(EXAMPLE), "--url", url, "--token", token("admin")]) == 0
    copies: list[object] = []
    real = eventsourcing.application.deepcopy

    def counted(value: object, memo: object = None) -> object:
        copies.append(value)
        return real(value, memo)

    monkeypatch.setattr(eventsourcing.application, "deepcopy", counted)
    first = app.policy
    assert first.version == "2027-01-01-returns"
    assert app.policy is first and app.policy is first  # parsed once
    assert copies == []

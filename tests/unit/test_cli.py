"""The `refunds` command line: help, staff tokens, port layout and the dev banner."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from refunds.asyncapi import generate
from refunds.cli import EXAMPLE_REFUND, banner, main
from refunds.devstack import COMPONENTS, Ports, Stack, StackError
from shared import staff_tokens as jwt
from shared.auth import DEV_API_KEY, DEV_TENANT
from shared.contracts import SERVICES
from tests.support.ports import stack_base

SECRET = "unit-test-secret-with-enough-length"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REFUNDS_JWT_SECRET", "REFUNDS_ENV"):
        monkeypatch.delenv(name, raising=False)


def run_token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    return capsys.readouterr().out.strip()


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("dev", "token", "asyncapi"):
        assert f"    {command} " in out


def test_no_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2


def test_token_round_trips_with_its_roles(capsys: pytest.CaptureFixture[str]) -> None:
    before = int(time.time())
    token = run_token(
        capsys, "--sub", "alice", "--role", "reviewer", "--role", "finance", "--ttl", "60"
    )
    claims = jwt.decode(token, jwt.DEV_JWT_SECRET)
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["reviewer", "finance"]
    assert claims["exp"] - claims["iat"] == 60
    assert before <= claims["iat"] <= int(time.time())


def test_token_uses_the_configured_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUNDS_JWT_SECRET", SECRET)
    token = run_token(capsys, "--sub", "bob", "--role", "admin")
    assert jwt.decode(token, SECRET)["roles"] == ["admin"]
    with pytest.raises(jwt.InvalidToken):
        jwt.decode(token, jwt.DEV_JWT_SECRET)


def test_token_outside_dev_needs_a_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUNDS_ENV", "production")
    assert main(["token", "--sub", "bob", "--role", "admin"]) == 2
    assert "REFUNDS_JWT_SECRET must be set" in capsys.readouterr().err


def test_an_unknown_role_exits_2_naming_the_allowed_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["token", "--sub", "mallory", "--role", "reviewer", "--role", "boss"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown role(s): boss" in captured.err
    assert ", ".join(jwt.STAFF_ROLES) in captured.err


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_a_bad_ttl_exits_2(ttl: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["token", "--sub", "alice", "--role", "auditor", "--ttl", ttl])
    assert exit_.value.code == 2


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_tampered_token_is_refused() -> None:
    token = jwt.encode(jwt.staff_claims("alice", ["reviewer"], 600), SECRET)
    header, _, signature = token.split(".")
    forged = _segment(jwt.staff_claims("alice", ["admin"], 600))
    with pytest.raises(jwt.InvalidToken, match="signature"):
        jwt.decode(f"{header}.{forged}.{signature}", SECRET)
    with pytest.raises(jwt.InvalidToken, match="signature"):
        jwt.decode(token, "another-secret")


def test_an_expired_token_is_refused() -> None:
    token = jwt.encode(jwt.staff_claims("alice", ["reviewer"], 60, now=1_000), SECRET)
    assert jwt.decode(token, SECRET, now=1_059)["sub"] == "alice"
    with pytest.raises(jwt.InvalidToken, match="expired"):
        jwt.decode(token, SECRET, now=1_060)
    with pytest.raises(jwt.InvalidToken, match="expired"):
        jwt.decode(token, SECRET)  # the real clock is long past 1 060


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "not base64!.e30.c2ln",
        _segment({"alg": "none"}) + "." + _segment({"sub": "x"}) + ".",
        _segment({"alg": "HS256"}) + ".bm90IGpzb24.c2ln",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(jwt.InvalidToken):
        jwt.decode(token, SECRET)


def test_a_non_json_payload_with_a_valid_signature_is_refused() -> None:
    header = _segment({"alg": "HS256", "typ": "JWT"})
    payload = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    signing_input = f"{header}.{payload}"
    digest = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidToken, match="JSON object"):
        jwt.decode(f"{signing_input}.{signature}", SECRET)


def test_ports_follow_the_base_port() -> None:
    ports = Ports.from_base(20000)
    assert (ports.intake, ports.review, ports.payout, ports.notify) == (20001, 20002, 20003, 20004)
    assert (ports.gateway, ports.smtp, ports.broker) == (20010, 20025, 20092)
    assert ports.of("mailsink") == 20025
    assert (ports.sms, ports.carrier) == (20030, 20040)


@pytest.mark.parametrize("base", ["0", "65500", "eighty"])
def test_dev_refuses_a_base_port_out_of_range(
    base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dev", "--base-port", base])
    assert exit_.value.code == 2
    assert "--base-port" in capsys.readouterr().err


def test_free_ports_are_distinct() -> None:
    ports = Ports.free()
    values = [ports.of(name) for name in COMPONENTS]
    assert len(set(values)) == len(values)


def test_banner_shows_where_everything_listens(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.from_base(20000))
    text = banner(stack)
    for name in stack.components:
        assert f"  {name} " in text
    assert "http://127.0.0.1:20050" in text  # the identity provider
    for user, role in [("ann", "reviewer"), ("wang", "senior_reviewer"), ("root", "admin")]:
        assert re.search(rf"^  {user} +demo +{role} ", text, re.MULTILINE), user
    assert "127.0.0.1:20092" in text
    assert "http://127.0.0.1:20001" in text
    assert DEV_TENANT in text
    assert f"Authorization: Bearer {DEV_API_KEY}" in text
    assert "curl -sS -X POST http://127.0.0.1:20001/v1/refunds" in text
    assert text.rstrip().endswith("Ctrl-C to stop.")


def test_the_console_is_started_last_and_announced(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.from_base(20000))
    assert "identity" in stack.components and stack.components[-1] == "console"
    assert "Staff console: http://127.0.0.1:20005" in banner(stack)


def test_services_and_the_console_are_pointed_at_the_identity_provider(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    for service in ("intake", "review", "payout", "notify"):
        assert stack.environment(service)["REFUNDS_OIDC_ISSUER"] == "http://127.0.0.1:8050"
    identity = stack.environment("identity")
    assert identity["SANDBOX_IDENTITY_PORT"] == "8050"
    assert identity["SANDBOX_IDENTITY_ISSUER"] == "http://127.0.0.1:8050"
    assert stack.command("identity")[-2:] == ["-m", "sandbox.identity"]
    console = stack.environment("console")
    assert stack.command("console")[-2:] == ["-m", "services.console"]
    assert {
        key: console[key]
        for key in (
            "REFUNDS_PORT",
            "REFUNDS_CONSOLE_URL",
            "REFUNDS_OIDC_ISSUER",
            "REFUNDS_OIDC_CLIENT_ID",
            "REFUNDS_OIDC_CLIENT_SECRET",
            "REFUNDS_INTAKE_URL",
            "REFUNDS_REVIEW_URL",
            "REFUNDS_PAYOUT_URL",
            "REFUNDS_NOTIFY_URL",
        )
    } == {
        "REFUNDS_PORT": "8005",
        "REFUNDS_CONSOLE_URL": "http://127.0.0.1:8005",
        "REFUNDS_OIDC_ISSUER": "http://127.0.0.1:8050",
        "REFUNDS_OIDC_CLIENT_ID": "refunds-console",
        "REFUNDS_OIDC_CLIENT_SECRET": "dev-console-secret",
        "REFUNDS_INTAKE_URL": "http://127.0.0.1:8001",
        "REFUNDS_REVIEW_URL": "http://127.0.0.1:8002",
        "REFUNDS_PAYOUT_URL": "http://127.0.0.1:8003",
        "REFUNDS_NOTIFY_URL": "http://127.0.0.1:8004",
    }
    # The console publishes nothing: it is no service of the event contracts.
    assert "console" not in SERVICES


def test_the_example_refund_is_one_intake_accepts() -> None:
    from services.intake.checks import request_problems
    from services.intake.schemas import RefundCreate

    assert request_problems(RefundCreate.model_validate(EXAMPLE_REFUND)) == []


def test_asyncapi_is_generated_from_the_models(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "asyncapi.json"
    assert main(["asyncapi", "--output", str(output)]) == 0
    document = json.loads(output.read_text())
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["intake"]["address"] == "refunds.intake.v1"
    assert "RefundRequestedV1" in document["components"]["schemas"]


def test_committed_asyncapi_document_is_current() -> None:
    committed = Path(__file__).parents[2] / "docs" / "asyncapi.json"
    assert json.loads(committed.read_text()) == json.loads(json.dumps(generate())), (
        "docs/asyncapi.json is stale: run `refunds asyncapi`"
    )


def test_free_base_skips_a_layout_with_any_port_taken() -> None:
    import socket

    start = Ports.free_base(41000 + os.getpid() % 100 * 100)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", Ports.from_base(start).gateway))  # one port of that layout
        chosen = Ports.free_base(start)
    assert chosen > start
    layout = Ports.from_base(chosen)
    assert Ports.from_base(start).gateway not in {
        getattr(layout, f) for f in layout.__dataclass_fields__
    }


def test_dev_help_documents_the_schema_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dev", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--schema-prefix PREFIX" in out
    assert "PREFIX_<service>" in out and "PREFIX_keystore" in out


@pytest.mark.parametrize("prefix", ["Refunds", "9lives", "bench-e2e", "x" * 55, ""])
def test_dev_refuses_a_schema_prefix_postgres_would_not_take(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dev", "--postgres", "postgresql://u@h/db", "--schema-prefix", prefix])
    assert exit_.value.code == 2
    assert "--schema-prefix" in capsys.readouterr().err


def test_dev_needs_postgres_for_a_schema_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--schema-prefix", "bench_e2e_1"]) == 2
    assert "--schema-prefix needs --postgres" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "prefix"),
    [(["--schema-prefix", "bench_e2e_1"], "bench_e2e_1"), ([], "refunds")],
)
def test_dev_gives_the_stack_its_schema_prefix(
    options: list[str], prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import refunds.cli.dev

    made: list[Stack] = []

    class Refusing(Stack):
        def start_all(self, timeout: float = 60, only: object = None) -> None:
            made.append(self)
            raise StackError("broker", "not in a unit test")

    monkeypatch.setattr(refunds.cli.dev, "Stack", Refusing)
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert main(["dev", "--data-dir", str(tmp_path), "--postgres", url, *options]) == 1
    (stack,) = made
    assert stack.database_url == url
    env = stack.environment("payout")
    assert env["REFUNDS_DATABASE_SCHEMA"] == f"{prefix}_payout"
    assert env["REFUNDS_KEYSTORE_SCHEMA"] == f"{prefix}_keystore"


def test_refunds_dev_honours_the_users_settings_under_its_own(tmp_path: Path) -> None:
    """REFUNDS_* from the user's environment reach the services and the console; the stack's
    own (ports, URLs, data dir) win and are named; REFUNDS_API_KEYS adds tenants."""
    inherited = {
        "REFUNDS_API_KEYS": "acme:sk_acme_0123456789abcdef0123",
        "REFUNDS_PAYOUT_MAX_ATTEMPTS": "7",
        "REFUNDS_PORT": "9999",
        "REFUNDS_DATA_DIR": "/elsewhere",
        "PATH_NOT_OURS": "x",
    }
    stack = Stack(tmp_path, Ports(), inherited=inherited)
    intake = stack.environment("intake")
    assert (
        intake["REFUNDS_API_KEYS"]
        == f"{DEV_TENANT}:{DEV_API_KEY},acme:sk_acme_0123456789abcdef0123"
    )
    assert intake["REFUNDS_PAYOUT_MAX_ATTEMPTS"] == "7"
    assert intake["REFUNDS_PORT"] == "8001"
    assert intake["REFUNDS_DATA_DIR"] == str(tmp_path.resolve())
    assert stack.environment("console")["REFUNDS_PAYOUT_MAX_ATTEMPTS"] == "7"
    assert "REFUNDS_PAYOUT_MAX_ATTEMPTS" not in stack.environment("gateway")  # sandboxes: none
    overridden = stack.overridden()
    assert set(overridden) == {"REFUNDS_PORT", "REFUNDS_DATA_DIR"}
    assert overridden["REFUNDS_DATA_DIR"] == str(tmp_path.resolve())
    # Without `inherited` (the tests' stacks) nothing of the caller's environment leaks in.
    assert "REFUNDS_PAYOUT_MAX_ATTEMPTS" not in Stack(tmp_path, Ports()).environment("intake")


def test_free_base_stays_below_its_stop() -> None:
    start = Ports.free_base(12000 + os.getpid() % 100 * 100)
    layout = Ports.from_base(start)
    widest = max(getattr(layout, f) for f in layout.__dataclass_fields__) - start
    assert Ports.free_base(start, stop=start + widest + 1) == start
    with pytest.raises(StackError, match="no free port range"):
        Ports.free_base(start, stop=start + widest)  # the layout would not fit


def test_parallel_workers_look_for_stack_ports_in_blocks_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bases = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        bases.append(stack_base())
    layouts = [Ports.from_base(base) for base in bases]
    ports = [{getattr(layout, f) for f in layout.__dataclass_fields__} for layout in layouts]
    assert not ports[0] & ports[1]
    assert abs(bases[0] - bases[1]) >= 1000  # whole blocks apart, not one layout

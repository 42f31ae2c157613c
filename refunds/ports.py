"""The local stack's components and the 127.0.0.1 ports they listen on."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path

from shared.contracts import SERVICES

HOST = "127.0.0.1"
# The payment providers' emulators (sandbox/STRIPE.md, ALIPAY.md, WECHATPAY.md).
PROVIDER_EMULATORS = ("stripe", "alipay", "wechatpay")
INFRASTRUCTURE = (
    "broker",
    "gateway",
    "mailsink",
    "sms",
    "carrier",
    "identity",
    *PROVIDER_EMULATORS,
)
# Apps that are not among the four services: they publish no events and only call the
# services' HTTP APIs, so they start after them (the staff console).
APPS = ("console",)
COMPONENTS = INFRASTRUCTURE + SERVICES + APPS
# Which Ports field each component listens on, where the names differ.
_PORT_FIELD = {"mailsink": "smtp"}
# Offsets from --base-port: each port keeps the last digits of its default.
_BASE_OFFSETS = {
    "intake": 1,
    "review": 2,
    "payout": 3,
    "notify": 4,
    "console": 5,
    "gateway": 10,
    "smtp": 25,
    "sms": 30,
    "carrier": 40,
    "identity": 50,
    "stripe": 60,
    "alipay": 70,
    "wechatpay": 80,
    "broker": 92,
}
# A service's messaging process (`Stack(messaging_apart=True)`) listens this far above its
# service: base+6..9, inside the layout, so it is below the ephemeral range when the layout
# is (a kernel-picked port can be handed to another process while that process is down).
_MESSAGING_OFFSET = 5
_LAYOUT_OFFSETS = (
    *_BASE_OFFSETS.values(),
    *(_BASE_OFFSETS[service] + _MESSAGING_OFFSET for service in SERVICES),
)
_HIGHEST_BASE = 65535 - max(_BASE_OFFSETS.values())  # the broker's port must still fit


class StackError(RuntimeError):
    """A component failed to start, died, or did not become ready; `component` names it."""

    def __init__(self, component: str, message: str) -> None:
        super().__init__(message)
        self.component = component


@dataclass(frozen=True)
class Ports:
    """The 127.0.0.1 ports the stack listens on; the defaults are the documented ones."""

    broker: int = 9092
    intake: int = 8001
    review: int = 8002
    payout: int = 8003
    notify: int = 8004
    console: int = 8005
    gateway: int = 8010
    smtp: int = 8025
    sms: int = 8030
    carrier: int = 8040
    identity: int = 8050
    stripe: int = 8060
    alipay: int = 8070
    wechatpay: int = 8080

    @classmethod
    def free(cls) -> Ports:
        """Ports the kernel says are free now (a brief race until the children bind is fine)."""
        with ExitStack() as sockets:
            chosen: dict[str, int] = {}
            # All sockets stay open until every port is picked, so no two picks coincide.
            for field in fields(cls):
                sock = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind((HOST, 0))
                chosen[field.name] = sock.getsockname()[1]
        return cls(**chosen)

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """base+1..4 the services, base+5 console, base+10 gateway, base+25 SMTP, base+30 SMS,
        base+40 carrier, base+50 identity provider, base+60/70/80 the Stripe, Alipay and WeChat
        Pay emulators, base+92 broker; base+6..9 the services' messaging processes, when apart."""
        if not 1 <= base <= _HIGHEST_BASE:
            raise ValueError(f"base port must be between 1 and {_HIGHEST_BASE}, got {base}")
        return cls(**{name: base + offset for name, offset in _BASE_OFFSETS.items()})

    @classmethod
    def free_base(cls, start: int, stop: int = 65536) -> int:
        """A base port from `start` on whose whole `from_base` layout is free right now, lies
        below `stop`, and is outside the kernel's ephemeral range: a port free now but in that
        range may be handed to any other process's `bind(0)` or outgoing connection before our
        child binds it. Callers that start stacks side by side give each its own range."""
        low, high = ephemeral_ports()
        widest = max(_LAYOUT_OFFSETS)
        for base in range(start, min(_HIGHEST_BASE, stop - widest), 137):
            if base <= high and base + widest >= low:
                continue
            if all(is_free(base + offset) for offset in _LAYOUT_OFFSETS):
                return base
        raise StackError("ports", f"no free port range in {start}..{stop}")

    def messaging(self, service: str) -> int:
        """The port of a service's messaging process, when it runs apart from its API."""
        return self.of(service) + _MESSAGING_OFFSET

    def of(self, component: str) -> int:
        """The port a component listens on."""
        check_component(component)
        port: int = getattr(self, _PORT_FIELD.get(component, component))
        return port


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (Linux's default when unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def check_component(name: str) -> None:
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")


def sandbox_env(name: str, ports: Ports, data_dir: Path) -> dict[str, str]:
    """A sandbox's settings: where it listens and keeps its files."""
    prefix = {
        "gateway": "SANDBOX_GATEWAY",
        "mailsink": "SANDBOX_SMTP",
        "carrier": "SANDBOX_CARRIER",
        "identity": "SANDBOX_IDENTITY",
    }.get(name, "SANDBOX_SMS")
    env = {
        f"{prefix}_HOST": HOST,
        f"{prefix}_PORT": str(ports.of(name)),
        "SANDBOX_DATA_DIR": str(data_dir),
    }
    if name == "identity":
        env["SANDBOX_IDENTITY_ISSUER"] = f"http://{HOST}:{ports.identity}"
    return env

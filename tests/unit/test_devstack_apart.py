"""`Stack(messaging_apart=True)`: each service's relay and consumer in a process of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from refunds.devstack import MESSAGING, SERVICES, Ports, Stack


def test_each_service_runs_as_its_api_and_its_messaging_process(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.free(), messaging_apart=True)

    assert stack.components[-4:] == MESSAGING == tuple(f"{s}-messaging" for s in SERVICES)
    for service in SERVICES:
        main, messaging = stack.environment(service), stack.environment(f"{service}-messaging")
        assert main["REFUNDS_RELAY_ENABLED"] == main["REFUNDS_CONSUMER_ENABLED"] == "false"
        assert "REFUNDS_RELAY_ENABLED" not in messaging  # on, as by default
        assert (
            messaging["REFUNDS_EXECUTOR_ENABLED"]
            == messaging["REFUNDS_SENDER_ENABLED"]
            == ("false")
        )
        assert messaging["REFUNDS_PORT"] != main["REFUNDS_PORT"]
        assert stack.url(f"{service}-messaging").endswith(messaging["REFUNDS_PORT"])
        assert stack.command(f"{service}-messaging") == stack.command(service)
        # The same store, broker and peers.
        for name in ("REFUNDS_DATA_DIR", "REFUNDS_KAFKA_BOOTSTRAP", "REFUNDS_GATEWAY_URL"):
            assert messaging[name] == main[name]


def test_without_it_there_are_no_messaging_processes(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.free())

    assert not stack.messaging_apart
    assert "REFUNDS_RELAY_ENABLED" not in stack.environment("intake")
    with pytest.raises(ValueError, match="unknown component"):
        stack.environment("intake-messaging")


def test_a_given_broker_is_used_instead_of_starting_one(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.from_base(30000), kafka="127.0.0.1:39999")
    assert "broker" not in stack.components
    assert stack.bootstrap == "127.0.0.1:39999"
    assert stack.environment("intake")["REFUNDS_KAFKA_BOOTSTRAP"] == "127.0.0.1:39999"
    started_here = Stack(tmp_path, Ports.from_base(30000))
    assert "broker" in started_here.components
    assert started_here.bootstrap == "127.0.0.1:30092"


def test_messaging_processes_listen_inside_the_stacks_layout(tmp_path: Path) -> None:
    # Not on kernel-picked ports: while a killed messaging process is down, such a port can
    # be handed to any other process, and its restart would find it taken.
    stack = Stack(tmp_path, Ports.from_base(20000), messaging_apart=True)
    layout = {stack.ports.of(name) for name in stack.components if name not in MESSAGING}
    ports = [stack.url(name).rsplit(":", 1)[1] for name in MESSAGING]
    assert ports == ["20006", "20007", "20008", "20009"]
    assert not layout & {int(port) for port in ports}


def test_a_layout_whose_messaging_port_is_taken_is_skipped(tmp_path: Path) -> None:
    import socket

    # The search must have room past `start` whatever the pid: a stop just above the first
    # layout once made the second search fail with no range left to try.
    start = Ports.free_base(14000 + os.getpid() % 50 * 100, stop=24000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", Ports.from_base(start).messaging("notify")))
        assert Ports.free_base(start, stop=start + 5000) > start

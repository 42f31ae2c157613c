"""Which roles a process runs: a declared role shows 0, a running loop 1, an ended or failed
loop 0 again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.leases import FileLeases
from shared.roles import Roles
from shared.wiring import Messaging
from tests.support.log_apps import thread_hops


async def test_a_role_is_active_only_while_its_loop_runs() -> None:
    roles = Roles()
    roles.declare("executor")  # switched off here
    started = asyncio.Event()

    async def relay(stop: asyncio.Event) -> None:
        started.set()
        await stop.wait()

    run = roles.run("relay", relay)
    assert roles.active() == {"executor": False, "relay": False}  # not started yet
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    await started.wait()
    assert roles.active() == {"executor": False, "relay": True}
    stop.set()
    await task
    assert roles.active() == {"executor": False, "relay": False}


async def test_a_loop_that_fails_no_longer_counts() -> None:
    roles = Roles()

    async def poller(stop: asyncio.Event) -> None:
        raise RuntimeError("provider unreachable")

    with pytest.raises(RuntimeError):
        await roles.run("poller", poller)(asyncio.Event())
    assert roles.active() == {"poller": False}


async def test_two_loops_of_one_role_count_until_both_end() -> None:
    async def sender(stop: asyncio.Event) -> None:
        await stop.wait()

    wired = Messaging()
    stops = [asyncio.Event(), asyncio.Event()]
    for _ in stops:
        wired.add("email_sender", sender)
    tasks = [asyncio.create_task(w(s)) for w, s in zip(wired.workers, stops, strict=True)]
    await asyncio.sleep(0)
    assert wired.roles.active() == {"email_sender": True}
    stops[0].set()
    await tasks[0]
    assert wired.roles.active() == {"email_sender": True}
    stops[1].set()
    await tasks[1]
    assert wired.roles.active() == {"email_sender": False}


async def test_a_lease_kept_in_memory_is_renewed_without_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held file lock cannot be taken away, so its renewal is a look at this process's own
    memory: no thread hop every ttl/3 for each role (most of an idle service's hops)."""
    leases = FileLeases(tmp_path, "payout", "payout-1:1", ttl=0.03)
    renewals: list[str] = []
    renew = leases.renew

    def counted(role: str, epoch: int) -> bool:
        renewals.append(role)
        return renew(role, epoch)

    monkeypatch.setattr(leases, "renew", counted)
    hops = thread_hops(monkeypatch)
    roles = Roles(leases)
    stop = asyncio.Event()

    async def executor(own_stop: asyncio.Event) -> None:
        await own_stop.wait()

    task = asyncio.create_task(roles.run("executor", executor)(stop))
    await asyncio.sleep(0.2)
    assert roles.active() == {"executor": True}
    stop.set()
    await task
    assert len(renewals) >= 3
    assert "counted" not in hops and "renew" not in hops
    assert hops == ["acquire", "release"]

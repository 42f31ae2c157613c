"""Whose CPU it was: the end-to-end benchmark's per-process accounting, net of idle.

Every process of the stack is put in a role by its command line (`python -m services.notify`
→ notify, `python -m sandbox.mailsink` → mailsink, tansu's `broker --listener-url …` →
broker); replicas of a service share its role. The load generator is the benchmark's own
process, the database server every local `postgres` process. A level's CPU per refund is
what each role used during the level minus what it uses idle over as long, per refund paid:
the periodic loops (SLA clock, sealing, followers looking at a quiet log) would otherwise be
charged to the refunds, more so at low rates.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OURS = ("intake", "review", "payout", "notify")
SANDBOXES = (
    "gateway",
    "alipay",
    "stripe",
    "wechatpay",
    "mailsink",
    "sms",
    "carrier",
    "identity",
)
# The table's columns, in order; "dev" is the `refunds dev` supervisor, "other" anything
# else below it (neither is expected to cost anything).
ROLES = (*OURS, "console", *SANDBOXES, "broker", "dev", "other", "loadgen", "db")
OUTSIDE_STACK = frozenset({"loadgen", "db"})
TOTALS = ("our four", "stack")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def role_of(argv: list[str]) -> str:
    """The role of a stack process, from its command line (`/proc/<pid>/cmdline`)."""
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        package, _, name = module.partition(".")
        if package == "services" and name in (*OURS, "console"):
            return name
        if package == "sandbox" and name in SANDBOXES:
            return name
    if "broker" in argv and "--listener-url" in argv:
        return "broker"
    if "dev" in argv and any(Path(arg).name == "refunds" for arg in argv[:2]):
        return "dev"
    return "other"


def with_totals(per_role: Mapping[str, float]) -> dict[str, float]:
    """`per_role` plus "our four" (the four services) and "stack" (all but loadgen and db)."""
    totals = dict(per_role)
    totals["our four"] = sum(per_role.get(role, 0.0) for role in OURS)
    totals["stack"] = sum(v for role, v in per_role.items() if role not in OUTSIDE_STACK)
    return totals


def idle_rates(before: Sample, after: Sample) -> dict[str, float]:
    """CPU-ms per second of each role between two quiet samples."""
    wall = after.at - before.at
    if wall <= 0:
        raise ValueError("the idle window must last")
    return {role: ms / wall for role, ms in after.ms_since(before).items()}


def net_per_refund(
    used_ms: Mapping[str, float], idle_ms_per_s: Mapping[str, float], wall: float, paid: int
) -> dict[str, float] | None:
    """(CPU during the level - idle rate * the level's wall time) ÷ refunds paid, per role.

    Not clipped at 0: a negative figure says that role's idle rate was noisier than its work.
    None when nothing was paid."""
    if paid <= 0:
        return None
    roles = set(used_ms) | set(idle_ms_per_s)
    return {
        role: (used_ms.get(role, 0.0) - idle_ms_per_s.get(role, 0.0) * wall) / paid
        for role in roles
    }


# -- reading /proc ---------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, float]:
    """(command name, parent pid, CPU seconds) of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is the state
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime, all threads
    return stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[1]), cpu


def _argv(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass
class Sample:
    """CPU seconds of every process that counts, each with its role, at one moment."""

    at: float  # time.monotonic()
    cpu: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid → (role, seconds)

    @classmethod
    def take(cls, root: int, db_command: str | None, also: Sequence[int] = ()) -> Sample:
        """The stack below `root` and `also` (the broker, when the benchmark runs it), this
        process (the load generator) and the local database server's processes (those named
        `db_command`), all read within a few milliseconds."""
        stats: dict[int, tuple[str, int, float]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stats[int(entry.name)] = _stat(int(entry.name))
                except (OSError, ValueError):  # ended meanwhile
                    continue
        sample = cls(time.monotonic())
        for pid in [p for top in (root, *also) for p in _below(top, stats)]:
            try:
                role = "dev" if pid == root else role_of(_argv(pid))
            except OSError:
                continue
            sample.cpu[pid] = (role, stats[pid][2])
        me = os.getpid()
        if me in stats:
            sample.cpu[me] = ("loadgen", stats[me][2])
        if db_command:
            for pid, (name, _, cpu) in stats.items():
                if name == db_command:
                    sample.cpu[pid] = ("db", cpu)
        return sample

    def ms_since(self, before: Sample) -> dict[str, float]:
        """CPU-ms per role since `before`; a process started since counts whole, one that
        ended is lost (its last seconds with it)."""
        used: dict[str, float] = defaultdict(float)
        for pid, (role, seconds) in self.cpu.items():
            earlier = before.cpu.get(pid)
            used[role] += (seconds - (earlier[1] if earlier else 0.0)) * 1000
        return dict(used)


def _below(root: int, stats: Mapping[int, tuple[str, int, float]]) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (_, parent, _) in stats.items():
        children[parent].append(pid)
    found, todo = [], [root] if root in stats else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


# -- waiting for a quiet stack ---------------------------------------------------------------------


@dataclass
class Settled:
    seconds: float  # how long the wait took
    settled: bool  # False: the bound was reached first
    last_ms_per_s: float  # our four services' rate in the last window


def wait_settled(
    sample: Callable[[], Sample],
    roles: Iterable[str] = OURS,
    *,
    threshold_ms_per_s: float,
    quiet_seconds: float = 3.0,
    timeout: float = 300.0,
    step: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Wait until `roles` together use less than the threshold for `quiet_seconds` in a row
    (after a restart the read models, ledgers and relays catch up with what is stored), or
    until `timeout`."""
    wanted = set(roles)
    start = previous = sample()
    quiet_since: float | None = None
    rate = float("inf")
    while True:
        sleep(step)
        current = sample()
        wall = current.at - previous.at
        used = current.ms_since(previous)
        rate = sum(ms for role, ms in used.items() if role in wanted) / wall if wall else rate
        if rate < threshold_ms_per_s:
            quiet_since = previous.at if quiet_since is None else quiet_since
            if current.at - quiet_since >= quiet_seconds:
                return Settled(current.at - start.at, True, rate)
        else:
            quiet_since = None
        if current.at - start.at >= timeout:
            return Settled(current.at - start.at, False, rate)
        previous = current

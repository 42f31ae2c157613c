"""Whose CPU it was, read from /proc: one process's CPU seconds (all its threads), those of
every process of one name (the local PostgreSQL server's), how busy the whole machine is, and a
snapshot of all three at one moment. intake_create's, borrowed by the other benchmarks."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is the state
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processes_cpu_seconds(command: str) -> dict[int, float]:
    """CPU seconds of every process named `command` (e.g. the local PostgreSQL server's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.index("(") + 1 : stat.rindex(")")] == command:
                found[int(entry.name)] = process_cpu_seconds(int(entry.name))
        except (OSError, ValueError):  # the process ended meanwhile
            continue
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_percent(seconds: float) -> float:
    """How busy the machine is over the next `seconds` (100 = every core), before we load it."""
    busy, total = machine_ticks()
    time.sleep(seconds)
    busy_after, total_after = machine_ticks()
    return 100 * (busy_after - busy) / max(1, total_after - total)


@dataclass
class CpuSnapshot:
    intake: float
    client: float
    db: dict[int, float]
    machine: tuple[int, int]

    @classmethod
    def take(cls, intake_pid: int, db_command: str | None) -> CpuSnapshot:
        return cls(
            intake=process_cpu_seconds(intake_pid),
            client=time.process_time(),
            db=processes_cpu_seconds(db_command) if db_command else {},
            machine=machine_ticks(),
        )

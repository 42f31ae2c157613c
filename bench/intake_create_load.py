"""One level of intake_create's load: the request body every worker posts (the CLI's example,
a new order each time) and `concurrency` asyncio workers posting it back to back over
keep-alive httpx clients, with what completes inside the measured window counted and the CPU
of intake, the database and the load generator sampled at the window's edges."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from bench.intake_create_cpu import CLOCK_TICKS, CpuSnapshot
from bench.intake_create_report import LevelResult, percentiles
from bench.intake_create_stack import API_KEY
from refunds.cli import EXAMPLE_REFUND

# -- the request ---------------------------------------------------------------------------------


def refund_body(n: int) -> dict[str, Any]:
    """The CLI's example request (kept valid by a unit test) as order `ORD-bench-<n>`."""
    body = copy.deepcopy(EXAMPLE_REFUND)
    body["order"]["id"] = f"ORD-bench-{n}"
    return body


# -- the load ------------------------------------------------------------------------------------


async def run_level(
    url: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    ids: Iterator[int],
    run_id: str,
    intake_pid: int,
    db_command: str | None,
    clients: int = 1,
) -> LevelResult:
    """`concurrency` workers post back to back; what completes inside the window is measured.

    The workers share `clients` keep-alive httpx clients (connections split evenly).
    """
    clients = max(1, min(clients, concurrency))
    per_client = math.ceil(concurrency / clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sample: list[str] = []
    start = time.perf_counter()
    window_start = start + warmup
    window_end = window_start + seconds
    snapshots: list[CpuSnapshot] = []

    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=60)
            )
            for _ in range(clients)
        ]

        async def worker(client: httpx.AsyncClient) -> None:
            while (sent := time.perf_counter()) < window_end:
                n = next(ids)
                content = json.dumps(refund_body(n), separators=(",", ":")).encode()
                try:
                    response = await client.post(
                        "/v1/refunds",
                        content=content,
                        headers={"Idempotency-Key": f"bench-{run_id}-{n}"},
                    )
                    kind = None if response.status_code == 201 else str(response.status_code)
                    detail = response.text[:300]
                except httpx.HTTPError as error:
                    kind, detail = type(error).__name__, str(error)[:300]
                done = time.perf_counter()
                if not window_start <= done < window_end:
                    continue
                if kind is None:
                    latencies.append(done - sent)
                else:
                    errors[kind] += 1
                    if not sample:
                        sample.append(f"{kind}: {detail}")

        async def sampler() -> None:
            for moment in (window_start, window_end):
                await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                snapshots.append(CpuSnapshot.take(intake_pid, db_command))

        await asyncio.gather(sampler(), *(worker(pool[i % clients]) for i in range(concurrency)))

    before, after = snapshots
    handled = max(1, len(latencies) + sum(errors.values()))
    db_ms = None
    db_seconds = 0.0
    if db_command:
        db_seconds = sum(cpu - before.db.get(pid, 0.0) for pid, cpu in after.db.items())
        db_ms = db_seconds * 1000 / handled
    intake_seconds = after.intake - before.intake
    client_seconds = after.client - before.client
    busy = after.machine[0] - before.machine[0]
    total = max(1, after.machine[1] - before.machine[1])
    ours = (intake_seconds + client_seconds + db_seconds) * CLOCK_TICKS
    p50, p95, p99 = (v * 1000 for v in percentiles(latencies, [50, 95, 99]))
    return LevelResult(
        concurrency=concurrency,
        seconds=seconds,
        requests=len(latencies),
        errors=sum(errors.values()),
        throughput=len(latencies) / seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=sum(latencies) * 1000 / len(latencies) if latencies else math.nan,
        max_ms=max(latencies) * 1000 if latencies else math.nan,
        intake_cpu_ms_per_request=intake_seconds * 1000 / handled,
        db_cpu_ms_per_request=db_ms,
        client_cpu_ms_per_request=client_seconds * 1000 / handled,
        machine_busy_percent=100 * busy / total,
        other_busy_percent=max(0.0, 100 * (busy - ours) / total),
        error_kinds=dict(errors),
        error_sample=sample[0] if sample else None,
    )

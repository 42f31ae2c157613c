"""What console_queue measures: a person signed in through the identity provider's form, each
page's console query and the review query the console sends for it, review left to settle,
the idle CPU rates, and each page timed against the console and against review (the raw
baseline)."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import httpx

from bench.console_queue_report import Timing
from bench.console_queue_stack import Stack
from bench.intake_create_cpu import machine_ticks, process_cpu_seconds, processes_cpu_seconds
from bench.intake_create_report import percentiles

PAGE_SIZE = 20  # services.console.pages.queue.PAGE_SIZE
PERSON = "ann"
PASSWORD = "demo"  # noqa: S105 - the sandbox provider's demo staff (dev only)
IDLE_SECONDS = 6.0  # longer than review's SLA clock interval (5 s), whose turns count as idle


# -- signing in -----------------------------------------------------------------------------------


def sign_in(console: httpx.Client, issuer: str) -> None:
    """As a browser: the console sends the person to the provider's form and back."""
    to_login = console.get("/queue")
    assert to_login.status_code == 303, f"/queue without a session: {to_login.status_code}"
    to_provider = console.get(to_login.headers["location"])
    assert to_provider.status_code == 302, to_provider.text
    authorize = to_provider.headers["location"]
    with httpx.Client(timeout=10) as provider:
        form = provider.get(authorize)
        handle = re.search(r'name="handle" value="([^"]+)"', form.text)
        assert handle is not None, f"no sign-in form at {authorize}"
        answer = provider.post(
            f"{issuer}/authorize",
            data={"handle": handle.group(1), "username": PERSON, "password": PASSWORD},
        )
    assert answer.status_code == 302, answer.text
    landed = console.get(answer.headers["location"])
    assert landed.status_code == 303, f"callback: {landed.status_code} {landed.text[:300]}"


def access_token(issuer: str) -> str:
    """The person's own access token, as the console holds it, for the raw baseline."""
    from tests.support.identity import sign_in as token_sign_in

    return str(token_sign_in(issuer, PERSON)["access_token"])


# -- timing ---------------------------------------------------------------------------------------


def pages(ids: list[str]) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Each page's console query and the review query the console sends for it."""
    halfway = ids[len(ids) // 2]
    base = {"limit": PAGE_SIZE}
    return {
        "first page": ({}, base),
        "filtered": (
            {"tier": "important", "reason": "damaged", "min": "1000"},
            base
            | {"tier": "important", "reason": "damaged", "currency": "CNY", "min_amount": 100_000},
        ),
        "later page": ({"starting_after": halfway}, base | {"starting_after": halfway}),
    }


def cpu_now(stack: Stack) -> dict[str, float]:
    found = {
        "console": process_cpu_seconds(stack.console.pid),
        "review": process_cpu_seconds(stack.review.pid),
    }
    if stack.db_command:
        found["db"] = sum(processes_cpu_seconds(stack.db_command).values())
    return found


def settle(stack: Stack, *, quiet: float = 0.1, timeout: float = 40.0) -> float:
    """Wait until review has done what it does once after start (its SLA clock's first look at
    every open case) — under `quiet` CPU-s per s over a second — or `timeout`; returns the
    seconds waited (== timeout: review never went quiet, e.g. an SLA clock busy every turn)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = process_cpu_seconds(stack.review.pid)
        time.sleep(1.0)
        if process_cpu_seconds(stack.review.pid) - before < quiet:
            break
    return time.monotonic() - started


def idle_rates(stack: Stack) -> dict[str, float]:
    """CPU seconds per second each part uses while nobody asks anything (review's queue
    follower, PostgreSQL's own housekeeping, …)."""
    before, started = cpu_now(stack), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    after, elapsed = cpu_now(stack), time.perf_counter() - started
    return {name: (after[name] - before[name]) / elapsed for name in before}


def rows_on(target: str, response: httpx.Response) -> int:
    if target == "review":
        return len(response.json()["data"])
    return len(set(re.findall(r'href="/cases/([^"?/]+)"', response.text)))


def time_page(
    stack: Stack,
    client: httpx.Client,
    *,
    store: str,
    page: str,
    target: str,
    path: str,
    params: dict[str, Any],
    requests: int,
    warmup: int,
    idle: dict[str, float],
) -> Timing:
    for _ in range(warmup):
        client.get(path, params=params).raise_for_status()
    latencies: list[float] = []
    rows = 0
    busy0, total0 = machine_ticks()
    cpu0, started = cpu_now(stack), time.perf_counter()
    for _ in range(requests):
        sent = time.perf_counter()
        response = client.get(path, params=params)
        latencies.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{target} {path}: {response.status_code} {response.text[:500]}")
        rows = rows_on(target, response)
    elapsed = time.perf_counter() - started
    cpu1 = cpu_now(stack)
    busy1, total1 = machine_ticks()
    net = {
        name: max(0.0, cpu1[name] - cpu0[name] - idle[name] * elapsed) * 1000 / requests
        for name in cpu0
    }
    p50, p95, top = percentiles(latencies, [50, 95, 100])
    return Timing(
        store=store,
        page=page,
        target=target,
        requests=requests,
        p50_ms=p50,
        p95_ms=p95,
        max_ms=top,
        mean_ms=sum(latencies) / len(latencies),
        rows=rows,
        cpu_ms={"console": net["console"], "review": net["review"], "db": net.get("db")},
        busy_percent=100 * (busy1 - busy0) / max(1, total1 - total0),
        idle_cpu_ms_per_s={name: rate * 1000 for name, rate in idle.items()},
    )


def measure(
    stack: Stack, ids: list[str], *, store: str, requests: int, warmup: int
) -> list[Timing]:
    issuer = stack.identity.url
    token = access_token(issuer)
    timings: list[Timing] = []
    with (
        httpx.Client(base_url=stack.console.url, timeout=30) as console,
        httpx.Client(
            base_url=stack.review.url,
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        ) as review,
    ):
        sign_in(console, issuer)
        waited = settle(stack)
        print(f"  review settled after {waited:.0f} s", file=sys.stderr)
        idle = idle_rates(stack)
        for page, (console_query, review_query) in pages(ids).items():
            for target, client, path, params in (
                ("review", review, "/v1/cases", review_query),
                ("console", console, "/queue", console_query),
            ):
                timing = time_page(
                    stack,
                    client,
                    store=store,
                    page=page,
                    target=target,
                    path=path,
                    params=params,
                    requests=requests,
                    warmup=warmup,
                    idle=idle,
                )
                timings.append(timing)
                print(
                    f"  {page:<11} {target:<8} p50 {timing.p50_ms:7.1f} ms ({timing.rows} cases)",
                    file=sys.stderr,
                )
    return timings

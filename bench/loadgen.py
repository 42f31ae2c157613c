"""Open-loop load against a running stack's intake, from a process of its own.

    .venv/bin/python -m bench.loadgen --intake http://127.0.0.1:8001 --rate 50 --duration 30
        [--api-key KEY] [--concurrency 64] [--mix auto=80,reject=10,manual=10] [--follow]
        [--kafka HOST:PORT] [--json out.json]

It offers `--rate` new refunds per second for `--duration` seconds on a fixed schedule,
whether or not earlier requests have been answered (open loop), so a slow service shows
up as latency and errors rather than as a politely lower request rate. POST latency is
counted from each request's scheduled start, so time spent waiting for one of the
`--concurrency` connections is included (no coordinated omission).

A benchmark, not a test: it asserts nothing about timings. It exits 1 if the run does not
count: any answer but 201, any transport error (timeout, refused connection, ...), and with
--follow any refund that did not end as its kind should.

The printed report and whether the run counts: bench/loadgen_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from bench.loadgen_report import failed, format_report
from bench.topic_follow import TopicFollower
from shared.auth import DEV_API_KEY

# What each kind of request is, and the statuses it may end in when followed.
KINDS = ("auto", "reject", "manual")
FINAL = frozenset({"paid", "rejected", "payout_failed"})
EXPECTED = {"auto": "paid", "reject": "rejected", "manual": "in_review"}
DEFAULT_MIX = "auto=80,reject=10,manual=10"


# -- the requests --------------------------------------------------------------------------------


def _ago(now: datetime, days: float) -> str:
    return (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def refund_body(
    kind: str, order_id: str, customer_id: str, method: str = "alipay"
) -> dict[str, Any]:
    """A POST /v1/refunds body like tests/support/factories.py `refund_body()`, paid with
    `method` (the order's payment method, so the refund's route back).

    `auto`: 129.00 CNY, damaged, with a photo: approved automatically and paid.
    `reject`: changed_mind, delivered 10 days ago: past the 7-day window, rejected.
    `manual`: 800.00 CNY, above the 500.00 automatic limit: waits in review for a person.
    """
    amount = 80000 if kind == "manual" else 12900
    delivered_days_ago = 10 if kind == "reject" else 2
    now = datetime.now(UTC)
    money = {"amount": amount, "currency": "CNY"}
    return {
        "order": {
            "id": order_id,
            "customer_id": customer_id,
            "paid": money,
            "paid_at": _ago(now, delivered_days_ago + 2),
            "delivered_at": _ago(now, delivered_days_ago),
            # One payment per order, as a provider sees it (one reference each).
            "payment": {"method": method, "reference": f"LG{order_id}"[:32]},
            "items": [
                {
                    "sku": "TSHIRT-L-WHITE",
                    "name": "T-shirt, L, white",
                    "category": "apparel",
                    "quantity": 1,
                    "unit_price": money,
                    "custom_made": False,
                }
            ],
        },
        "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1}],
        "amount": money,
        "reason": "changed_mind" if kind == "reject" else "damaged",
        "desired_outcome": "full_refund",
        "description": "Stain on the front, visible in the photo",
        "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}],
        "customer": {"email": "li.wei@example.com", "phone": "+8613800000000", "locale": "zh-CN"},
        "channel": "app",
        "metadata": {"source": "bench.loadgen"},
    }


def parse_mix(text: str) -> dict[str, int]:
    """`auto=80,reject=10,manual=10` → weights; kinds left out get 0."""
    mix = dict.fromkeys(KINDS, 0)
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in mix or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"bad mix part {part!r}: want KIND=WEIGHT with KIND one of {', '.join(KINDS)}"
            )
        mix[name] = int(weight)
    if sum(mix.values()) == 0:
        raise argparse.ArgumentTypeError("the mix needs at least one positive weight")
    return mix


def schedule_kinds(mix: dict[str, int], count: int) -> list[str]:
    """`count` kinds in the mix's proportions, spread evenly (no randomness).

    Each next request is the kind furthest behind its share so far, so 100 requests at
    80/10/10 are exactly 80, 10 and 10, and every stretch of the run has the same mix.
    """
    total = sum(mix.values())
    sent = Counter[str]()
    kinds: list[str] = []
    for n in range(1, count + 1):
        kind = max(mix, key=lambda k: mix[k] * n / total - sent[k])
        sent[kind] += 1
        kinds.append(kind)
    return kinds


def is_terminal(kind: str, status: str) -> bool:
    """Final for this test: paid, rejected, payout_failed; in_review too for `manual`."""
    return status in FINAL or (kind == "manual" and status == "in_review")


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least p % at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 in milliseconds, to 0.1 ms."""
    found = {f"p{p}": percentile(values, p) for p in (50, 95, 99)}
    return {name: None if value is None else round(value, 1) for name, value in found.items()}


# -- one refund ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one offered refund."""

    kind: str
    http_status: int | None = None  # None: no answer (transport error)
    error: str | None = None  # the transport error's class name
    post_ms: float | None = None  # from the scheduled start to the answer
    answered_at: float = 0.0  # time.perf_counter() when the POST was answered or failed
    refund_id: str | None = None
    final: str | None = None  # with --follow: the last status seen
    final_ms: float | None = None  # from the scheduled start to the terminal status
    poll_errors: Counter[str] | None = None  # with --follow: GETs that were 5xx or failed


@dataclass
class Settings:
    rate: float
    duration: float
    concurrency: int
    follow: bool
    poll_interval: float
    follow_timeout: float
    timeout: float


@dataclass
class Driver:
    """Sends one refund's requests over the shared client and ticks the progress bar."""

    client: httpx.AsyncClient
    settings: Settings
    progress: Any  # tqdm
    followed: int = 0
    # With a follower, refunds are followed on the topics instead of by polling intake
    # (bench/topic_follow.py); those waiting in review still by polling.
    topics: TopicFollower | None = None

    async def offer(
        self, outcome: Outcome, body: dict[str, Any], key: str, scheduled: float
    ) -> None:
        try:
            response = await self.client.post(
                "/v1/refunds", json=body, headers={"Idempotency-Key": key}
            )
        except httpx.TransportError as exc:
            outcome.error = type(exc).__name__
        else:
            outcome.http_status = response.status_code
        outcome.answered_at = time.perf_counter()
        outcome.post_ms = (outcome.answered_at - scheduled) * 1000
        self.progress.update()
        if outcome.http_status != 201:
            return
        created = response.json()
        outcome.refund_id = str(created["id"])
        outcome.final = str(created["status"])
        if self.settings.follow:
            await self.follow(outcome, scheduled)
            self.followed += 1
            self.progress.set_postfix_str(f"followed to the end: {self.followed}")

    async def follow(self, outcome: Outcome, scheduled: float) -> None:
        """Poll GET /v1/refunds/{id} until terminal for its kind or the follow time is up."""
        outcome.poll_errors = Counter()
        if self.topics is not None and outcome.kind != "manual" and outcome.refund_id:
            seen = await self.topics.wait(outcome.refund_id, self.settings.follow_timeout)
            if seen is not None:
                outcome.final = seen[0]
                outcome.final_ms = (seen[1] - scheduled) * 1000
            return
        deadline = time.perf_counter() + self.settings.follow_timeout
        while outcome.final is None or not is_terminal(outcome.kind, outcome.final):
            if time.perf_counter() > deadline:
                return
            await asyncio.sleep(self.settings.poll_interval)
            try:
                response = await self.client.get(f"/v1/refunds/{outcome.refund_id}")
            except httpx.TransportError as exc:
                outcome.poll_errors[type(exc).__name__] += 1
                continue
            if response.status_code >= 500:
                outcome.poll_errors[f"GET {response.status_code}"] += 1
            elif response.status_code == 200:
                outcome.final = str(response.json()["status"])
        outcome.final_ms = (time.perf_counter() - scheduled) * 1000


async def run(
    intake: str,
    api_key: str,
    settings: Settings,
    mix: dict[str, int],
    method: str = "alipay",
    kafka: str | None = None,
) -> tuple[list[Outcome], float, float, float]:
    """Offer every request on schedule, each order paid with `method`; wait for all (followed
    on the broker at `kafka` if given). → outcomes, offer span, POST span, lag."""
    count = max(1, round(settings.rate * settings.duration))
    kinds = schedule_kinds(mix, count)
    run_id = uuid.uuid4().hex[:8]
    outcomes = [Outcome(kind) for kind in kinds]
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive timeout closes
    # them server-side: at equal timeouts a request sent on a connection the server is just
    # closing fails with ReadError, which would be counted as the service's error.
    limits = httpx.Limits(
        max_connections=settings.concurrency,
        max_keepalive_connections=settings.concurrency,
        keepalive_expiry=2.0,
    )
    headers = {"Authorization": f"Bearer {api_key}"}
    progress = tqdm(total=count, unit="req", desc="POSTs answered", file=sys.stderr, disable=None)
    async with httpx.AsyncClient(
        base_url=intake, headers=headers, limits=limits, timeout=settings.timeout
    ) as client:
        follower = TopicFollower(kafka) if kafka and settings.follow else None
        if follower is not None:
            await follower.start()
        driver = Driver(client, settings, progress, topics=follower)
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        max_lag = 0.0
        for n, outcome in enumerate(outcomes):
            scheduled = start + n / settings.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, time.perf_counter() - scheduled)
            body = refund_body(outcome.kind, f"ORD-lg-{run_id}-{n}", f"C-lg-{run_id}-{n}", method)
            key = f"lg-{run_id}-{n}"
            tasks.append(asyncio.create_task(driver.offer(outcome, body, key, scheduled)))
        offered_span = time.perf_counter() - start
        try:
            await asyncio.gather(*tasks)
        finally:
            if follower is not None:
                await follower.stop()
    progress.close()
    post_span = max(o.answered_at for o in outcomes) - start
    return outcomes, offered_span, post_span, max_lag


# -- the report ----------------------------------------------------------------------------------


def summarize(
    outcomes: list[Outcome],
    settings: Settings,
    mix: dict[str, int],
    offered_span: float,
    post_span: float,
    max_lag: float,
) -> dict[str, Any]:
    """The run's numbers, as printed and as written with --json."""
    by_status = Counter(str(o.http_status) for o in outcomes if o.http_status is not None)
    transport = Counter(o.error for o in outcomes if o.error is not None)
    server_errors = sum(1 for o in outcomes if o.http_status is not None and o.http_status >= 500)
    answered = sum(by_status.values())
    summary: dict[str, Any] = {
        "offered_rate": settings.rate,
        "duration_s": settings.duration,
        "concurrency": settings.concurrency,
        "mix": mix,
        "requests": len(outcomes),
        "by_kind": dict(Counter(o.kind for o in outcomes)),
        "offer_span_s": round(offered_span, 3),
        "max_schedule_lag_ms": round(max_lag * 1000, 1),
        "answered": answered,
        "achieved_rate": round(answered / post_span, 2) if post_span > 0 else 0.0,
        "by_http_status": dict(sorted(by_status.items())),
        "errors": {
            "5xx": server_errors,
            "transport": sum(transport.values()),
            "transport_kinds": dict(transport),
        },
        "post_ms": percentiles([o.post_ms for o in outcomes if o.post_ms is not None]),
    }
    if settings.follow:
        followed = [o for o in outcomes if o.refund_id is not None]
        reached = [o for o in followed if o.final_ms is not None]
        poll_errors = sum((o.poll_errors or Counter() for o in followed), Counter[str]())
        by_kind_final: dict[str, dict[str, int]] = {}
        for o in followed:
            finals = by_kind_final.setdefault(o.kind, {})
            finals[o.final or "?"] = finals.get(o.final or "?", 0) + 1
        summary["follow"] = {
            "followed": len(followed),
            "reached_terminal": len(reached),
            "not_terminal": len(followed) - len(reached),
            "unexpected": sum(1 for o in reached if o.final != EXPECTED[o.kind]),
            "by_final_status": dict(Counter(o.final for o in followed)),
            "by_kind": by_kind_final,
            "poll_errors": dict(poll_errors),
            "final_ms": percentiles([o.final_ms for o in reached if o.final_ms is not None]),
        }
    return summary


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description=(
            "Open-loop load generator for a running stack (e.g. `refunds dev`): offers "
            "--rate new refunds per second for --duration seconds to intake's POST "
            "/v1/refunds, each a new order and customer with its own Idempotency-Key, "
            "prints a table and exits 1 unless every request was created (and, with --follow, "
            "ended as its kind should)."
        ),
        epilog=(
            "Reports: offered and achieved rate (answers per second), answers by HTTP status, "
            "5xx and transport errors, POST latency p50/p95/p99 counted from each request's "
            "scheduled start; with --follow also final statuses by kind and POST→final "
            "p50/p95/p99. Example, against `refunds dev`: python -m bench.loadgen --rate 50 "
            "--duration 30 --follow --json bench/results/loadgen.json"
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--intake", default="http://127.0.0.1:8001", help="intake's base URL")
    parser.add_argument(
        "--api-key", default=DEV_API_KEY, help="platform API key (the dev stack's key by default)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="new refunds offered per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to offer them for")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="most connections open at once; requests beyond wait for one (and the wait "
        "counts in their latency)",
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=DEFAULT_MIX,
        help="relative weights of request kinds: auto (129.00 CNY, approved and paid), "
        "reject (changed_mind delivered 10 days ago, past the 7-day window: rejected), "
        "manual (800.00 CNY, above the 500.00 automatic limit: waits in review)",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="poll GET /v1/refunds/{id} after each 201 until paid, rejected, payout_failed "
        "(or in_review for manual) and report POST→final latency and final statuses",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.2, help="seconds between polls with --follow"
    )
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="with --follow: follow refunds on this broker's topics (payout.succeeded, "
        "payout.failed, review.rejected) instead of polling intake",
    )
    parser.add_argument(
        "--follow-timeout",
        type=float,
        default=60.0,
        help="seconds after its POST that a refund is followed before giving up",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request HTTP timeout")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the numbers here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1:
        raise SystemExit("--rate and --duration must be > 0, --concurrency ≥ 1")
    settings = Settings(
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
        follow=args.follow,
        poll_interval=args.poll_interval,
        follow_timeout=args.follow_timeout,
        timeout=args.timeout,
    )
    mix: dict[str, int] = args.mix  # argparse runs parse_mix on the default too
    outcomes, offered_span, post_span, lag = asyncio.run(
        run(args.intake.rstrip("/"), args.api_key, settings, mix, kafka=args.kafka)
    )
    summary = summarize(outcomes, settings, mix, offered_span, post_span, lag)
    print(format_report(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if failed(summary) else 0


if __name__ == "__main__":
    sys.exit(main())

"""How a load generator run is judged and shown, from its summary (bench/loadgen.py's
`summarize`: the dict printed and written with --json): whether the run counts, and the
aligned report it prints."""

from __future__ import annotations

from typing import Any


def failed(summary: dict[str, Any]) -> bool:
    """The run does not count: any answer but 201 (a 401 from a wrong key included), any
    transport error, or (with --follow) a poll error or a refund that did not end as its
    kind should."""
    errors = summary["errors"]
    by_status = summary["by_http_status"]
    created = by_status.get(201, by_status.get("201", 0))  # keys are strings after JSON
    follow = summary.get("follow", {})
    wrong_answers = created != summary["requests"]
    wrong_ends = bool(follow.get("not_terminal") or follow.get("unexpected"))
    polls = follow.get("poll_errors", {})
    return bool(errors["5xx"] or errors["transport"] or polls or wrong_answers or wrong_ends)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def format_report(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = [
        ("offered rate", f"{summary['offered_rate']:g} req/s for {summary['duration_s']:g} s"),
        ("requests offered", f"{summary['requests']} " + _counts(summary["by_kind"])),
        ("schedule lag (max)", f"{summary['max_schedule_lag_ms']:,.1f} ms"),
        ("achieved rate", f"{summary['achieved_rate']:g} answers/s"),
        ("HTTP status", _counts(summary["by_http_status"]) or "-"),
        (
            "errors",
            f"5xx {summary['errors']['5xx']}, transport {summary['errors']['transport']} "
            + _counts(summary["errors"]["transport_kinds"]),
        ),
        ("POST p50/p95/p99", " / ".join(_ms(v) for v in summary["post_ms"].values())),
    ]
    if "follow" in summary:
        follow = summary["follow"]
        rows += [
            (
                "followed",
                f"{follow['followed']}, terminal {follow['reached_terminal']}, "
                f"not terminal {follow['not_terminal']}, unexpected {follow['unexpected']}",
            ),
            ("final status", _counts(follow["by_final_status"]) or "-"),
            ("poll errors", _counts(follow["poll_errors"]) or "0"),
            ("POST→final p50/p95/p99", " / ".join(_ms(v) for v in follow["final_ms"].values())),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())

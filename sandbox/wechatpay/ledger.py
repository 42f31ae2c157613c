"""The emulator's state: payments, refunds and notifications, in memory under one lock,
snapshotted to `wechatpay.json` in the data dir (when one is given) so a restart keeps them.

A refund is created PROCESSING with a planned outcome and a due time; `complete_due`
settles it then (SUCCESS, ABNORMAL or CLOSED) and queues its notification.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BEIJING = timezone(timedelta(hours=8))
SNAPSHOT = "wechatpay.json"
FINAL_EVENTS = {
    "SUCCESS": "REFUND.SUCCESS",
    "ABNORMAL": "REFUND.ABNORMAL",
    "CLOSED": "REFUND.CLOSED",
}


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, BEIJING).isoformat(timespec="seconds")


@dataclass
class Payment:
    transaction_id: str
    out_trade_no: str
    total: int
    paid_at: float
    mchid: str


@dataclass
class Refund:
    refund_id: str
    out_refund_no: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    refund: int
    total: int
    notify_url: str | None
    created_at: float
    status: str = "PROCESSING"
    outcome: str = "SUCCESS"
    due_at: float = 0.0
    success_at: float | None = None
    channel: str = "ORIGINAL"
    received_account: str = "支付用户零钱"

    def view(self) -> dict[str, Any]:
        """The refund object as the refund APIs answer it."""
        data: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": self.channel,
            "user_received_account": self.received_account,
            "create_time": rfc3339(self.created_at),
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
                "settlement_refund": self.refund,
                "settlement_total": self.total,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if self.success_at is not None:
            data["success_time"] = rfc3339(self.success_at)
        return data

    def notice(self) -> dict[str, Any]:
        """The plaintext of its notification's resource."""
        data: dict[str, Any] = {
            "mchid": self.mchid,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "refund_status": self.status,
            "user_received_account": self.received_account,
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
            },
        }
        if self.success_at is not None:
            data["success_time"] = rfc3339(self.success_at)
        return data


@dataclass
class Notification:
    id: str
    out_refund_no: str
    event_type: str
    notify_url: str
    state: str = "pending"  # pending, delivered, failed, dropped
    attempts: int = 0
    next_attempt_at: float = 0.0
    results: list[str] = field(default_factory=list)
    probe: bool = False  # send a WECHATPAY/SIGNTEST/ probe first
    missign: bool = False  # sign this one wrongly (every attempt)


class Conflict(Exception):
    """An out_refund_no reused with other parameters."""


class Ledger:
    def __init__(self, data_dir: Path | None, default_total: int) -> None:
        self.lock = threading.RLock()
        self.default_total = default_total
        self._path = data_dir / SNAPSHOT if data_dir is not None else None
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, Refund] = {}
        self.notifications: dict[str, Notification] = {}
        if self._path is not None and self._path.exists():
            data = json.loads(self._path.read_text())
            self.payments = {k: Payment(**v) for k, v in data["payments"].items()}
            self.refunds = {k: Refund(**v) for k, v in data["refunds"].items()}
            self.notifications = {k: Notification(**v) for k, v in data["notifications"].items()}

    def save(self) -> None:
        if self._path is None:
            return
        with self.lock:
            data = {
                "payments": {k: asdict(v) for k, v in self.payments.items()},
                "refunds": {k: asdict(v) for k, v in self.refunds.items()},
                "notifications": {k: asdict(v) for k, v in self.notifications.items()},
            }
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False))
            tmp.replace(self._path)

    # --- payments ---

    def add_payment(
        self, mchid: str, transaction_id: str | None, out_trade_no: str | None, total: int
    ) -> Payment:
        with self.lock:
            transaction_id = transaction_id or _transaction_id_for(out_trade_no or "")
            out_trade_no = out_trade_no or f"sandbox{transaction_id[-16:]}"
            payment = Payment(transaction_id, out_trade_no, total, time.time(), mchid)
            self.payments[f"id:{transaction_id}"] = payment
            self.payments[f"out:{out_trade_no}"] = payment
            self.save()
            return payment

    def payment(self, mchid: str, field_name: str, reference: str) -> Payment:
        """The payment a reference names; one of the default total when none was created."""
        key = f"{'id' if field_name == 'transaction_id' else 'out'}:{reference}"
        with self.lock:
            found = self.payments.get(key)
            if found is not None:
                return found
            if field_name == "transaction_id":
                return self.add_payment(mchid, reference, None, self.default_total)
            return self.add_payment(mchid, None, reference, self.default_total)

    def refunded(self, transaction_id: str) -> int:
        """What refunds hold of a payment (a closed refund gave its amount back)."""
        return sum(
            r.refund
            for r in self.refunds.values()
            if r.transaction_id == transaction_id and r.status != "CLOSED"
        )

    # --- refunds ---

    def create_refund(
        self,
        mchid: str,
        payment: Payment,
        out_refund_no: str,
        amount: int,
        notify_url: str | None,
        outcome: str,
        delay: float,
    ) -> tuple[Refund, bool]:
        """The refund under `out_refund_no` (created now, or the one there: then True)."""
        with self.lock:
            earlier = self.refunds.get(out_refund_no)
            if earlier is not None:
                if (earlier.transaction_id, earlier.refund) != (payment.transaction_id, amount):
                    raise Conflict()
                return earlier, True
            now = time.time()
            refund = Refund(
                refund_id="50" + "".join(secrets.choice("0123456789") for _ in range(27)),
                out_refund_no=out_refund_no,
                mchid=mchid,
                transaction_id=payment.transaction_id,
                out_trade_no=payment.out_trade_no,
                refund=amount,
                total=payment.total,
                notify_url=notify_url,
                created_at=now,
                outcome=outcome,
                due_at=now + delay,
            )
            self.refunds[out_refund_no] = refund
            self.save()
            return refund, False

    def complete_due(self, now: float, plan_notice: Any) -> bool:
        """Settle refunds whose time has come; True when notifications were queued."""
        queued = False
        with self.lock:
            for refund in self.refunds.values():
                if refund.status == "PROCESSING" and refund.due_at <= now:
                    self.finish(refund, refund.outcome, now)
                    queued |= self.queue_notice(refund, plan_notice)
            if queued:
                self.save()
        return queued

    def finish(self, refund: Refund, status: str, now: float) -> None:
        refund.status = status
        if status == "SUCCESS":
            refund.success_at = now

    def queue_notice(self, refund: Refund, plan_notice: Any) -> bool:
        if not refund.notify_url:
            return False
        dropped, probe, missign = plan_notice()
        notice_id = f"EV-{secrets.token_hex(12)}"
        self.notifications[notice_id] = Notification(
            id=notice_id,
            out_refund_no=refund.out_refund_no,
            event_type=FINAL_EVENTS[refund.status],
            notify_url=refund.notify_url,
            state="dropped" if dropped else "pending",
            probe=probe,
            missign=missign,
        )
        return not dropped

    def due_notifications(self, now: float) -> list[Notification]:
        with self.lock:
            due = [
                n
                for n in self.notifications.values()
                if n.state == "pending" and n.next_attempt_at <= now
            ]
            for n in due:
                n.state = "sending"
            return due

    def next_due(self) -> float | None:
        with self.lock:
            times = [n.next_attempt_at for n in self.notifications.values() if n.state == "pending"]
            times += [r.due_at for r in self.refunds.values() if r.status == "PROCESSING"]
            return min(times, default=None)

    def refunds_on(self, day: str) -> list[Refund]:
        """Refunds applied for on a Beijing calendar day (YYYY-MM-DD), in order."""
        with self.lock:
            found = [
                r
                for r in self.refunds.values()
                if datetime.fromtimestamp(r.created_at, BEIJING).date().isoformat() == day
            ]
        return sorted(found, key=lambda r: (r.created_at, r.out_refund_no))

    def payment_of(self, refund: Refund) -> Payment | None:
        with self.lock:
            return self.payments.get(f"id:{refund.transaction_id}")


def _transaction_id_for(out_trade_no: str) -> str:
    # Stable, so the same out_trade_no always maps to the same WeChat Pay order number.
    digest = int(hashlib.sha256(out_trade_no.encode()).hexdigest(), 16)
    return "4200" + str(digest)[:24].rjust(24, "0")


def utc_now() -> datetime:
    return datetime.now(UTC)

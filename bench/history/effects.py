"""What the workers that talk to the outside world would have done with a seeded refund:
payout's executor sending each new payout through the sandbox gateway (which answers
success), and notify's e-mail and SMS senders sending each due message. Each is decided by
the aggregates' own methods, as the workers call them, and stored in one transaction per
round with the workers' own (default) stamp. Nothing reaches the gateway or a mailbox: the
sandboxes of a later stack know nothing of seeded refunds, as for refunds paid long ago."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.history.pipeline import Seat, stamped, write
from services.notify.messages.domain import Correspondence
from services.notify.messages.sender import ADDRESS_FIELDS
from services.notify.messages.sms import mask_phone
from services.notify.messages.steps import EMAIL, SMS, mask_email, message_id, notification_id
from services.notify.messages.templates import render
from services.payout.domain import Payout
from services.payout.providers.base import ProviderReceipt
from services.payout.settlement import apply_receipt

# Where payouts of the dev tenant go with `refunds dev --no-providers`; with providers the
# route only names another provider: the payout is as settled either way.
PROVIDER = "gateway"
MASKS = {EMAIL: mask_email, SMS: mask_phone}


def settle_payouts(seat: Seat, changed: list[Any]) -> int:
    """Dispatch and settle, as the executor does on the gateway's success, every pending
    payout among `changed` (the aggregates payout's reactions just stored)."""
    payouts = [a for a in changed if isinstance(a, Payout) and a.status == "pending"]
    now = datetime.now(UTC)
    for payout in payouts:
        payout.dispatch(now, PROVIDER)
        receipt = ProviderReceipt(
            provider_reference=f"seed_{uuid.uuid4().hex[:24]}",
            executed_at=now,
            arrival_latest=date.today() + timedelta(days=3),
            merchant_refund_no=payout.number,
            amount=payout.amount.amount,
            currency=payout.amount.currency,
        )
        outcome = apply_receipt(payout, payout.number, payout.method, receipt, now)
        if payout.status != "paid":
            raise RuntimeError(f"seeded payout {payout.id} did not settle: {outcome}")
    write(seat.app, stamped(seat.app, payouts))
    seat.kept.check()
    seat.count("payouts settled", len(payouts))
    return len(payouts)


def send_messages(seat: Seat, changed: list[Any]) -> int:
    """Send, as the e-mail and SMS senders do, every due message of the correspondences
    among `changed`: e-mail claims its attempt first, SMS does not."""
    app: Any = seat.app
    correspondences = [a for a in changed if isinstance(a, Correspondence)]
    sent = 0
    now = datetime.now(UTC)
    for correspondence in correspondences:
        for due in correspondence.pending(channels=(EMAIL, SMS)):
            address = app.keys.reveal(due.address, field=ADDRESS_FIELDS[due.channel])
            if address is None:
                raise RuntimeError(f"seeded customer of {correspondence.refund_id} erased")
            refund_id = correspondence.refund_id
            rendering = render(
                due.step, due.locale, due.facts, reference=refund_id, channel=due.channel
            )
            if due.channel == EMAIL:
                correspondence.start_attempt(due.step, EMAIL, uuid.uuid4().hex)
                provider_id = message_id(refund_id, due.step, EMAIL)
            else:
                provider_id = f"sms_{notification_id(refund_id, due.step, SMS)}"
            correspondence.record_sent(
                step=due.step,
                channel=due.channel,
                message_id=provider_id,
                recipient_masked=MASKS[due.channel](address),
                locale=rendering.locale,
                template=rendering.template,
                sent_at=now,
            )
            sent += 1
    write(app, stamped(app, correspondences))
    seat.kept.check()
    seat.count("messages sent", sent)
    return sent

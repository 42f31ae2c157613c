"""When refunded money reaches the customer: the provider's latest date, else our estimate."""

from __future__ import annotations

from datetime import date, datetime, timedelta

# Typical arrival after the provider accepted the refund (DOMAIN.md §5: 1-3
# business days for cards and bank transfers; wallets and balance the same day).
ARRIVAL_BUSINESS_DAYS = {
    "alipay": 0,
    "wechat_pay": 0,
    "store_balance": 0,
    "bank_transfer": 2,
    "card": 3,
}


def expected_arrival(method: str, paid_at: datetime, latest: date | None = None) -> datetime:
    """The provider's latest arrival date when it gave one, else our own estimate."""
    if latest is not None:
        return datetime.combine(latest, paid_at.timetz())
    days = ARRIVAL_BUSINESS_DAYS.get(method, 3)
    arrival = paid_at
    while days:
        arrival += timedelta(days=1)
        if arrival.weekday() < 5:
            days -= 1
    return arrival

"""Which service publishes which integration event type: each publisher's module lists its own."""

from shared.contracts import intake, notify, payout, review
from shared.contracts.common import IntegrationEvent

# Keyed like shared.kafka.TOPICS: each service publishes on its own topic.
PUBLISHERS: dict[str, tuple[type[IntegrationEvent], ...]] = {
    "intake": intake.PUBLISHED,
    "review": review.PUBLISHED,
    "payout": payout.PUBLISHED,
    "notify": notify.PUBLISHED,
}
EVENT_TYPES: dict[str, type[IntegrationEvent]] = {
    model.TYPE: model for models in PUBLISHERS.values() for model in models
}
# The service that publishes each type (a CloudEvent's `source`).
PUBLISHED_BY: dict[str, str] = {
    model.TYPE: service for service, models in PUBLISHERS.items() for model in models
}

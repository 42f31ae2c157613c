"""Notify: the shapes earlier builds stored, and how each is read today.

Events stored as `services.notify.domain:Correspondence.*` resolve to the same classes
(messages/domain.py registers the old topic), so they read through these too.
"""

from __future__ import annotations

from typing import Any

from services.notify.messages.domain import Correspondence
from shared.upcasting import set_upcasters


def _contact_recorded(state: dict[str, Any]) -> None:
    """058f5d7 stored no `customer_id` (427a8f2): the in-app feed cannot list that refund's
    messages by customer."""
    state.setdefault("customer_id", None)


def _step_scheduled(state: dict[str, Any]) -> None:
    """058f5d7 scheduled a step per channel; since 427a8f2 a step is scheduled once and
    each channel's delivery follows from it."""
    state.pop("channel", None)


def _attempt_started(state: dict[str, Any]) -> None:
    """427a8f2 stored no `claim` (e96e934): the attempt was claimed without a sender's token."""
    state.setdefault("claim", None)


def _message_sent(state: dict[str, Any]) -> None:
    """058f5d7 stored no `customer_id`, `title`, `body` (427a8f2): it sent e-mail only, and
    only an in-app message is a feed item with a title and body."""
    for key in ("customer_id", "title", "body"):
        state.setdefault(key, None)


# Stored as version 2 from now on. Every event stored so far has no version (1), whether
# a development build or 0.1.0 wrote it: each upcaster recognises the older shape by its
# keys and leaves 0.1.0's as it is (tests/e2e/test_frozen_stores.py loads 0.1.0's).
set_upcasters(Correspondence, "ContactRecorded", _contact_recorded)
set_upcasters(Correspondence, "StepScheduled", _step_scheduled)
set_upcasters(Correspondence, "AttemptStarted", _attempt_started)
set_upcasters(Correspondence, "MessageSent", _message_sent)

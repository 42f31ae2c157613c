"""The console's words: languages, page groups and who sees them."""

from __future__ import annotations

from typing import Final

# The languages the console speaks (BCP 47 tag → Babel's locale name and catalog folder).
LOCALES: Final = {"zh-CN": "zh_CN", "en": "en"}
DEFAULT_LOCALE: Final = "zh-CN"
LOCALE_COOKIE: Final = "refunds_console_lang"
SESSION_COOKIE: Final = "refunds_console"
CSRF_FIELD: Final = "csrf_token"
IDEMPOTENCY_FIELD: Final = "idempotency_key"

# Navigation: one entry per page group, shown to the roles that may use it. Other page groups
# (services/console/pages/<group>.py) add their entry here.
NAVIGATION: Final = (
    # (path, label msgid, roles)
    ("/queue", "Review queue", frozenset({"reviewer", "senior_reviewer", "finance", "admin"})),
    ("/warehouse", "Warehouse", frozenset({"warehouse", "admin"})),
    ("/finance", "Finance", frozenset({"finance", "admin"})),
    ("/audit", "Audit", frozenset({"auditor", "admin"})),
    ("/admin", "Administration", frozenset({"admin"})),
    ("/analytics", "Analytics", frozenset({"finance", "auditor", "admin"})),
)
# Page groups whose pages exist today; the others show in the navigation once they are built.
BUILT: Final = frozenset({"/queue", "/warehouse", "/finance", "/audit", "/admin", "/analytics"})

# Reasons a reviewer may cite when rejecting (cited by review as `manual.<code>`).
REJECTION_REASONS: Final = (
    "no_defect_found",
    "outside_window",
    "insufficient_evidence",
    "not_as_described_unproven",
    "suspected_abuse",
)

# A refund's statuses (intake's) while its goods go back: the case page shows the return's
# state and links to the warehouse page for them.
RETURN_STATES: Final = (
    "awaiting_return",
    "return_in_transit",
    "return_delivered",
    "return_received",
    "return_not_shipped",
    "exchange_ready",
)

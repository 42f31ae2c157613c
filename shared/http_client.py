"""How our HTTP clients that talk to one peer at a rate keep their connections."""

from __future__ import annotations

import httpx

# httpx looks at every pooled connection, through anyio's attribute lookup, as each request
# is given one and again as its response closes (~50 µs per idle connection per request):
# the 16 idle connections the payout executor's bursts left to the gateway were a fifth of
# a payout's HTTP cost. Bursts beyond this many open connections that close after use.
KEPT_ALIVE = 4
ONE_PEER = httpx.Limits(max_connections=100, max_keepalive_connections=KEPT_ALIVE)

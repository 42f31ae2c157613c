"""Port ranges for the dev stacks tests start (`refunds dev --base-port`, `Stack`).

Each pytest-xdist worker searches its own block of ports for a free layout. Two workers
probing one shared range could both find the same ports free and both start a stack on
them; the second stack's sandbox then fails to bind and `refunds dev` stops mid-test.
Within one worker, tests run one after another, so the probe alone keeps stacks apart.

Every block lies below the kernel's ephemeral range. A port the kernel picked for us
(`bind(0)`, as `Ports.free()` does) is free only until we close our probe socket; before
the child binds it, any test's outgoing connection or `bind(0)` may be handed the same
port (CI once lost a whole drill module to "console: port 55527 is already in use").
"""

from __future__ import annotations

import os

from refunds.ports import Ports

_FIRST = 10000  # below the kernel's ephemeral range (32768 on Linux by default)
_BLOCK = 2000  # room for several layouts (each spans 93 ports) per worker
_WORKERS = 11  # blocks that fit below 32768


def stack_base() -> int:
    """A base port whose whole layout is free now, in this worker's own block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _FIRST + int(worker or 0) % _WORKERS * _BLOCK
    return Ports.free_base(start, stop=start + _BLOCK)


def stack_ports() -> Ports:
    """A `Stack`'s ports: a free layout in this worker's own block."""
    return Ports.from_base(stack_base())

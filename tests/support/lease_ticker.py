"""A replica of a small service for the lease drills: it runs one leased role, `executor`,
whose loop stores a Payment naming its holder every 20 ms, through the real wiring (store_env,
the fenced recorder, `Roles` with the store's leases). Stopped by SIGTERM.

    python -m tests.support.lease_ticker <database url> <schema>   (REFUNDS_REPLICA, _LEASE_SECONDS)
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.fencing import LeaseLost
from shared.leases import leases_for
from shared.roles import Roles
from shared.settings import ServiceSettings
from shared.store import store_env


class Payment(Aggregate):
    def __init__(self, holder: str) -> None:
        self.holder = holder


class Ticker(ServiceApplication):
    name = "Ticker"


async def main(database_url: str, schema: str) -> None:
    settings = ServiceSettings(database_url=database_url, database_schema=schema)
    app = Ticker(env=store_env(settings, "ticker"))
    leases = leases_for(app.recorder.datastore, settings, "ticker")  # type: ignore[attr-defined]
    roles = Roles(leases)

    async def execute(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(app.save, Payment(leases.holder))
            except LeaseLost:
                print("refused", flush=True)  # fencing at work: counted by the drill
            await asyncio.sleep(0.02)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"holder {leases.holder}", flush=True)
    await roles.run("executor", execute)(stop)
    app.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2]))

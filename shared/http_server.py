"""The HTTP server every process of ours runs: uvicorn's, with a quieter idle loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn

# uvicorn's main loop wakes ten times a second to refresh its Date header (once a second) and
# to see whether to stop: in a dozen idle processes, a tenth of the stack's idle CPU.
TICK_SECONDS = 1.0
# At a stop, how long a connection taken just before may take to send its request.
ARRIVAL_GRACE_SECONDS = 0.25
ARRIVAL_LOOK_SECONDS = 0.01


class LeanServer(uvicorn.Server):
    """uvicorn's server, its main loop ticking once a second; asked to stop (`stop`, or
    uvicorn's own signal handling), it wakes at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        """Stop serving (from the event loop's thread, or a signal handler)."""
        self.should_exit = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.stop()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, after a pause for requests on their way: it closes at once a
        connection that has not sent its request yet, and the client of a connection taken
        just before the stop would see it fail (a rolling update must fail no request). So
        stop taking connections first, then give those taken up to ARRIVAL_GRACE_SECONDS to
        send theirs; each is then answered as uvicorn answers requests in flight."""
        # asyncio accepts a connection in one callback and makes its transport in a task of
        # its own; a server closed in between drops that connection unread, which resets it
        # (the client sees ECONNRESET). So stop accepting first and let those tasks run.
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for listening in server.sockets:
                loop.remove_reader(listening.fileno())
        await asyncio.sleep(0)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for _ in range(round(ARRIVAL_GRACE_SECONDS / ARRIVAL_LOOK_SECONDS)):
            # uvicorn's protocols start a request's cycle when its head has arrived.
            waiting = [c for c in self.server_state.connections if getattr(c, "cycle", 0) is None]
            if not waiting:
                break
            await asyncio.sleep(ARRIVAL_LOOK_SECONDS)
        await super().shutdown(sockets)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        ticks_per_second = 10  # what uvicorn's on_tick counts in
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + ticks_per_second) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(counter)


def serve_http(app: Any, *, host: str, port: int, log_level: str = "info") -> None:
    """`uvicorn.run(app, host=..., port=...)` on the lean server (the sandboxes' way), with
    no access log (as our services): a line per request was a formatted write per payout and
    per SMS in the stack a user runs. What they were asked is kept where it matters (the
    gateway's ledger, the SMS log, the mail folder, the emulators' own request records)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    LeanServer(config).run()

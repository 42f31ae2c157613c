"""A lean HTTP/1.1 POST for the gateway's callbacks to plain-http receivers, over kept-alive
connections: httpx's request machinery cost the gateway about half its CPU per refund.

Only what a callback needs: a POST with a body, the status code, the body framed by
Content-Length (anything else ends the connection after the headers: the body is never
read). A reused connection that the receiver closed meanwhile is retried once on a new
one (receivers deduplicate callbacks by id). Failures are named as httpx names them,
since an attempt's `last_result` shows the name: ConnectError, ConnectTimeout, ReadTimeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class SendError(Exception):
    """A failed attempt, named as httpx would name it (`name`)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class CallbackSender:
    """POSTs to http:// URLs; at most one idle connection is kept per receiver."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._idle: dict[tuple[str, int], _Connection] = {}

    @staticmethod
    def handles(url: str) -> bool:
        return url.startswith("http://")

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The receiver's status code (SendError when no answer came)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        reused = self._idle.pop((host, port), None)
        if reused is not None:
            try:
                return await self._exchange((host, port), reused, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # closed by the receiver while idle: once more on a new connection
        try:
            async with asyncio.timeout(self._timeout):
                connection = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise SendError("ConnectTimeout") from None
        except OSError:
            raise SendError("ConnectError") from None
        try:
            return await self._exchange((host, port), connection, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            raise SendError("RemoteProtocolError") from None

    async def _exchange(self, key: tuple[str, int], connection: _Connection, request: bytes) -> int:
        reader, writer = connection
        keep = answered = False
        try:
            writer.write(request)
            async with asyncio.timeout(self._timeout):
                await writer.drain()
                status_line = await reader.readuntil(b"\r\n")
                version, _, rest = status_line.decode("latin-1").partition(" ")
                status = int(rest[:3])
                length: int | None = None
                keep = version == "HTTP/1.1"
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.decode("latin-1").partition(":")
                    name, value = name.strip().lower(), value.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif (name, value) == ("connection", "close") or name == "transfer-encoding":
                        keep = False  # the connection ends, or the body's end is unknown
                if length is None:
                    keep = False  # its end is unknown: the body is left unread
                elif keep:
                    await reader.readexactly(length)
                answered = True
        except TimeoutError:
            raise SendError("ReadTimeout") from None
        except ValueError:
            raise SendError("RemoteProtocolError") from None
        finally:
            if answered and keep and key not in self._idle:
                self._idle[key] = connection
            else:
                writer.close()
        return status

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for _, writer in idle.values():
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

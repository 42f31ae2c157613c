"""Each HTTP request runs under its own audit stamp, and answers with its `Request-Id`.

The request id is the causation of every event the request stores; the caller
quotes it to support, the auditor finds it in the ledger. Authentication names
the actor on the same stamp (`shared.stamping.identify`).
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import stamping

REQUEST_ID_HEADER = b"request-id"


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestStamp:
    """Pure ASGI (no extra task): the stamp set here is the one the route's threads see."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        token = stamping.begin(causation=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            stamping.end(token)

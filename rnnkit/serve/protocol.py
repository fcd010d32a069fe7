"""uvicorn's h11 HTTP protocol plus a request-head timeout.

uvicorn closes idle keep-alive connections, but a client that sends half a request head and
then nothing (or one byte every few seconds) holds its connection forever. Here a connection
whose request head is not complete ``seconds`` after it opened (or after its previous
response) is closed, and so is one still trickling a body after its response was sent.
Built on uvicorn internals (``H11Protocol``; uvicorn is pinned in constraints.txt);
``serve`` falls back to plain h11 if they change.
"""
from __future__ import annotations

import asyncio


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            waiting_for_head = self.conn.their_state is h11.IDLE
            unwanted_body = self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY
            if (waiting_for_head or unwanted_body) and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol

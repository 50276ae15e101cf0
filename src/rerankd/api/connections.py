"""HTTP connections that cannot be held open for nothing: uvicorn's h11 protocol with timeouts and a cap.

uvicorn times out a keep-alive connection only after a response; a client that connects and sends
nothing, trickles its request head, or stalls its body holds a connection (and a file descriptor) for
ever, and httptools takes a head of any size. :class:`GuardedH11Protocol` closes a connection whose
request head is not complete ``header_timeout`` seconds after it opened (or after its first byte following
an idle keep-alive), whose body sends nothing for ``body_timeout`` seconds, or whose head is over
``max_header_bytes`` (431). Beyond ``max_connections`` open connections, a new one makes room by closing
the connection that has waited longest for a request head; with none waiting it is refused (503).
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import time
from dataclasses import dataclass
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["FD_RESERVE", "ConnectionLimits", "GuardedH11Protocol", "connection_cap", "guarded_protocol"]

log = logging.getLogger(__name__)

FD_RESERVE = 64  # file descriptors kept for the process itself: the database, model files, logs
_MAX_BACKLOG = 2048  # uvicorn's listen backlog
_END_OF_HEAD = re.compile(b"\n\r?\n")  # the blank line, as h11 finds it


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000


def connection_cap(configured: int) -> tuple[int, int]:
    """``max_connections`` and the listen backlog, each within half of what the process's file-descriptor
    limit leaves (less ``FD_RESERVE``): connections accepted in one burst, before any is closed to make
    room, must not run the process out of descriptors (the database's, the real clients')."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or configured + _MAX_BACKLOG <= soft - FD_RESERVE:
        return configured, _MAX_BACKLOG
    room = max(2, soft - FD_RESERVE)
    cap = min(configured, room // 2)
    if cap < configured:
        log.warning(
            "max_connections %d lowered to %d: the file-descriptor limit (ulimit -n) is %d",
            configured,
            cap,
            soft,
        )
    return cap, room - cap  # under _MAX_BACKLOG, as configured + _MAX_BACKLOG > room


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``http=``) for these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def _reply(status: int, reason: str, text: str, *extra: str) -> bytes:
    """A complete response that closes the connection, written outside h11 (which has no request)."""
    body = text.encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: text/plain; charset=utf-8", *extra]
    head += [f"content-length: {len(body)}", "connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    _timer: asyncio.TimerHandle | None = None
    _waiting_for: str | None = None  # "head" or "body", what the timer is for
    _waiting_since = 0.0  # when the connection began waiting for its current request head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._waiting_since = time.monotonic()
        self._arm("head", self.limits.header_timeout)
        self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_large(data):
            limit = self.limits.max_header_bytes
            self.logger.warning("request head over %d bytes: connection closed", limit)
            self._close_with(
                _reply(431, "Request Header Fields Too Large", f"request head over {limit} bytes")
            )
            return
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._waiting_since = time.monotonic()
        self._watch()  # a pipelined request may have been read already

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head being received, up to its blank line, is over the bound. (h11's own bound
        applies only to a head still incomplete after a read: one read may hold a whole larger head.)"""
        received = self.conn.trailing_data[0] + data
        end = _END_OF_HEAD.search(received)
        return (end.end() if end else len(received)) > self.limits.max_header_bytes

    # -- the timer ------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Arm the timer for what the connection now waits for from the client, if anything."""
        if self.transport.is_closing():
            self._disarm()
        elif self.conn.their_state is h11.SEND_BODY:
            self._arm("body", self.limits.body_timeout)  # again on every read: the body must not stall
        elif self.conn.their_state is h11.IDLE and self._awaiting_head():
            # Bytes of a new head after an idle keep-alive (whose own timer uvicorn runs) start the clock.
            if self._waiting_for != "head" and self.conn.trailing_data[0]:
                self._arm("head", self.limits.header_timeout)
        else:
            self._disarm()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._waiting_for = what
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._waiting_for = None, None

    def _timed_out(self) -> None:
        what, self._timer, self._waiting_for = self._waiting_for, None, None
        if self.transport.is_closing():
            return
        if what == "body":
            if self.flow.read_paused:  # the app has not taken what came yet: the client is not stalling
                self._arm("body", self.limits.body_timeout)
                return
            self.logger.info("request body stalled for %.0fs: connection closed", self.limits.body_timeout)
            self.transport.close()  # the app sees a disconnect
        elif self.conn.trailing_data[0]:
            self.logger.info(
                "request head incomplete after %.0fs: connection closed", self.limits.header_timeout
            )
            self._close_with(_reply(408, "Request Timeout", "request head not received in time"))
        else:
            self.transport.close()  # connected and said nothing

    # -- the cap --------------------------------------------------------------------------------

    def _awaiting_head(self) -> bool:
        """No request of this connection is being read or answered."""
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _make_room(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        waiting = [
            other
            for other in self.connections
            if isinstance(other, GuardedH11Protocol) and other is not self and other._awaiting_head()
        ]
        if waiting:
            min(waiting, key=lambda other: other._waiting_since).transport.close()
            return
        self.logger.warning("%d connections, all busy: a new one refused", len(self.connections) - 1)
        self._close_with(_reply(503, "Service Unavailable", "too many connections", "retry-after: 1"))

    def _close_with(self, response: bytes) -> None:
        self._disarm()
        self.transport.write(response)
        self.transport.close()

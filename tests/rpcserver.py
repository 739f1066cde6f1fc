"""
The RPC site on a real loopback port, for tests that talk to it with real
clients (C{transmission-remote}, replayed Sonarr bytes, raw sockets).
"""

from __future__ import annotations

import socket
from typing import Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.protocols.policies import WrappingFactory

from btorrent.control.rpc import makeRPCSite


class RPCServer:
    """
    L{makeRPCSite} listening on 127.0.0.1 (a free port chosen by the
    system), stopped at the test's cleanup once its connections are gone.

    @ivar site: the L{ControlSite}.
    @ivar port: the TCP port.
    """

    def __init__(self, case, session, reactor, **kw) -> None:
        self._reactor = reactor
        self.site = makeRPCSite(session, reactor, **kw)
        self._factory = WrappingFactory(self.site)
        self._listening = reactor.listenTCP(0, self._factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port
        case.addCleanup(self.stop)

    @property
    def address(self) -> str:
        """
        C{host:port}, as C{transmission-remote} takes it.
        """
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/transmission/rpc"

    @property
    def connections(self) -> int:
        return len(self._factory.protocols)

    def stop(self) -> Deferred:
        async def stop() -> None:
            await self._listening.stopListening()
            for _ in range(500):
                if not self._factory.protocols:
                    return
                for protocol in list(self._factory.protocols):
                    protocol.transport.loseConnection()
                await deferLater(self._reactor, 0.01, lambda: None)
            raise AssertionError("RPC connections still open")

        return Deferred.fromCoroutine(stop())


class RawResponse:
    """
    One HTTP response read off a socket.
    """

    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.split(b"\r\n")
        self.statusLine = lines[0]
        self.code = int(lines[0].split()[1])
        self.headers: Dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = body

    def header(self, name: bytes) -> Optional[bytes]:
        return self.headers.get(name.lower())


def readResponse(sock: socket.socket, buffer: bytearray) -> RawResponse:
    """
    Read one response (its body sized by Content-Length) from C{sock},
    keeping what follows in C{buffer}.  Blocking: run it in a thread.
    """
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response: {bytes(buffer)!r}")
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    response = RawResponse(head, b"")
    length = int(response.header(b"content-length") or 0)
    while len(buffer) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed in the middle of a body")
        buffer += data
    response.body = bytes(buffer[:length])
    del buffer[:length]
    return response


def exchange(port: int, *requests: bytes, timeout: float = 20) -> List[RawResponse]:
    """
    Send each request on one connection and read its response before the
    next.  Blocking: run it in a thread.
    """
    responses = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        buffer = bytearray()
        for request in requests:
            sock.sendall(request)
            responses.append(readResponse(sock, buffer))
    return responses


def streamBody(
    port: int, head: bytes, chunk: bytes, count: int, timeout: float = 30
) -> Tuple[RawResponse, int]:
    """
    Send C{head}, then C{chunk} C{count} times (or until the server stops
    taking it), then read the response.  Blocking: run it in a thread.

    @return: the response and how many bytes of the body were sent.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for _ in range(count):
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        return readResponse(sock, bytearray()), sent

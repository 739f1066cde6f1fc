"""
A client of the Transmission RPC (version 3.00's C{rpc-spec.txt}) on
C{treq}: it drives a running btorrent daemon or a transmission-daemon.

One L{RPCClient} per daemon.  L{RPCClient.call} POSTs
C{{"method", "arguments", "tag"}} as JSON and fires with the reply's
C{arguments}; it does the C{X-Transmission-Session-Id} dance (a 409 carries
the id to use: keep it, send the request again, once), sends Basic
credentials pre-emptively when it has them (or, with C{preemptive=False},
only after a 401 challenge, as C{transmission-remote} does), checks the
echoed C{tag}, refuses answers bigger than L{MAX_ANSWER} and gives up after
a timeout.

Every failure is an L{RPCError} whose C{str} is one line for the user
(C{"cannot reach the daemon at URL: connection refused"},
C{"authentication failed: ..."}): never a traceback.

The reactor is a parameter: this module never imports the global one.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from treq.client import HTTPClient
from twisted.internet import defer, error
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web import client as webclient
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from btorrent.cli.remoteargs import DEFAULT_URL
from btorrent.cli.text import printable

__all__ = [
    "AuthenticationFailed",
    "DEFAULT_URL",
    "DaemonUnreachable",
    "MAX_ANSWER",
    "MethodFailed",
    "ProtocolError",
    "RPCClient",
    "RPCError",
]

#: The header carrying the CSRF token of the Transmission RPC.
SESSION_HEADER = b"X-Transmission-Session-Id"

#: The biggest answer body read, in bytes (a C{torrent-get} of every
#: field of thousands of torrents stays far below).
MAX_ANSWER = 64 * 1024 * 1024

#: Seconds to connect, and seconds for a whole exchange (all retries).
CONNECT_TIMEOUT = 10.0
TIMEOUT = 60.0

#: The most characters of a daemon's error text shown to the user.
MAX_RESULT_TEXT = 300


class RPCError(Exception):
    """
    A call failed; C{str(e)} is one line for the user.
    """


class DaemonUnreachable(RPCError):
    """
    No connection, or no answer in time.
    """


class AuthenticationFailed(RPCError):
    """
    The daemon answered 401: no credentials, or the wrong ones.
    """


class ProtocolError(RPCError):
    """
    The daemon answered something that is not a Transmission RPC reply: an
    unexpected HTTP status (403, 421, 5xx...), a body that is not JSON or
    too big, the wrong tag.

    @ivar status: the HTTP status code, if that is what went wrong.
    """

    def __init__(self, text: str, status: Optional[int] = None) -> None:
        super().__init__(text)
        self.status = status


class MethodFailed(RPCError):
    """
    The daemon answered with a C{result} other than C{"success"}.

    @ivar method: the method called.
    @ivar result: the daemon's C{result} text.
    """

    def __init__(self, method: str, result: str) -> None:
        super().__init__(f"{method}: {_oneLine(result)}")
        self.method = method
        self.result = result


def _oneLine(text: str) -> str:
    """
    C{text} from the daemon made safe to show on one line: control
    characters escaped (L{printable}), cut at L{MAX_RESULT_TEXT} characters.
    """
    text = printable(text)
    if len(text) > MAX_RESULT_TEXT:
        text = text[:MAX_RESULT_TEXT] + "... (cut)"
    return text


class _BoundedBody(Protocol):
    """
    Collect a response body of at most C{limit} bytes into C{done}; more
    drops the connection and fails C{done} with L{ProtocolError}.
    """

    def __init__(self, limit: int, tooBig: str) -> None:
        self.limit = limit
        self.tooBig = tooBig
        self.chunks: List[bytes] = []
        self.size = 0
        self.done: defer.Deferred = defer.Deferred(lambda d: self._abort())

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def refuse(self) -> None:
        """
        Drop the connection now and fail C{done} (a body known to be too
        big).
        """
        self._abort()
        if not self.done.called:
            self.done.errback(ProtocolError(self.tooBig))

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.chunks = []
            self._abort()
            self.done.errback(ProtocolError(self.tooBig))
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = None) -> None:
        if self.done.called:
            return
        if reason is None or reason.check(webclient.ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


class RPCClient:
    """
    Calls to one Transmission RPC endpoint.

    @ivar url: the endpoint.
    @ivar sessionId: the last C{X-Transmission-Session-Id} the daemon gave.
    """

    def __init__(
        self,
        reactor,
        url: str = DEFAULT_URL,
        auth: Optional[Tuple[str, str]] = None,
        *,
        preemptive: bool = True,
        timeout: float = TIMEOUT,
        connectTimeout: float = CONNECT_TIMEOUT,
        maxAnswer: int = MAX_ANSWER,
        persistent: bool = False,
    ) -> None:
        """
        @param reactor: the reactor to connect and time out with.
        @param url: the RPC endpoint (see
            L{btorrent.cli.remoteargs.normalizeURL}).
        @param auth: C{(user, password)} for Basic authentication, or C{None}.
        @param preemptive: send the credentials with the first request;
            otherwise only after a 401 challenge.
        @param timeout: seconds a whole call may take (retries included).
        @param connectTimeout: seconds to establish a connection.
        @param maxAnswer: the biggest answer body accepted, in bytes.
        @param persistent: keep connections open between calls (close them
            with L{close}); by default each call has its own connection,
            closed after the answer (the RPC is a few calls per command, or
            one a second for C{watch}, on loopback).
        """
        self.reactor = reactor
        self.url = url
        self.auth = auth
        self.preemptive = preemptive
        self.timeout = timeout
        self.maxAnswer = maxAnswer
        self.sessionId: Optional[str] = None
        self._tag = 0
        self._sendAuth = auth is not None and preemptive
        self._pool = webclient.HTTPConnectionPool(reactor, persistent=persistent)
        self._pool.retryAutomatically = False
        agent = webclient.Agent(reactor, connectTimeout=connectTimeout, pool=self._pool)
        self._http = HTTPClient(agent)

    def close(self) -> defer.Deferred:
        """
        Close the connections kept open.
        """
        return self._pool.closeCachedConnections()

    def call(
        self, method: str, arguments: Optional[Dict[str, Any]] = None
    ) -> defer.Deferred:
        """
        Call C{method} with C{arguments}.

        @return: a L{Deferred} firing with the reply's C{arguments} (a
            dict), or failing with an L{RPCError}.
        """
        d = defer.ensureDeferred(self._call(method, arguments or {}))
        timedOut = []

        def expire() -> None:
            timedOut.append(True)
            d.cancel()

        timer = self.reactor.callLater(self.timeout, expire)

        def done(result):
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure) and timedOut:
                return Failure(
                    DaemonUnreachable(
                        f"no answer from the daemon at {self.url} "
                        f"within {self.timeout:g} s"
                    )
                )
            return result

        return d.addBoth(done)

    async def _call(self, method: str, arguments: Dict[str, Any]) -> Dict[str, Any]:
        self._tag += 1
        tag = self._tag
        body = json.dumps(
            {"method": method, "arguments": arguments, "tag": tag},
            separators=(",", ":"),
        ).encode("utf-8")
        retried409 = retried401 = False
        while True:
            status, headers, data = await self._post(body)
            newId = headers.getRawHeaders(SESSION_HEADER)
            if newId:
                self.sessionId = newId[-1].decode("latin-1")
            if status == 409 and newId and not retried409:
                retried409 = True
                continue
            if status == 401 and self.auth is not None and not self._sendAuth:
                challenge = b" ".join(headers.getRawHeaders(b"WWW-Authenticate", []))
                if not retried401 and challenge.lower().startswith(b"basic"):
                    retried401 = self._sendAuth = True
                    continue
            if status != 200:
                raise self._statusError(status)
            return self._decode(method, tag, data)

    async def _post(self, body: bytes) -> Tuple[int, Headers, bytes]:
        """
        POST C{body} once; the status, headers and (bounded) body.
        """
        headers = {"Content-Type": "application/json"}
        if self.sessionId is not None:
            headers[SESSION_HEADER.decode()] = self.sessionId
        try:
            response = await self._http.post(
                self.url,
                data=body,
                headers=headers,
                auth=self.auth if self._sendAuth else None,
                allow_redirects=False,
                unbuffered=True,
                reactor=self.reactor,
            )
        except (error.ConnectError, error.TimeoutError, error.DNSLookupError) as e:
            raise DaemonUnreachable(
                f"cannot reach the daemon at {self.url}: {_connectReason(e)}"
            ) from None
        except (
            webclient.ResponseFailed,
            webclient.RequestNotSent,
            webclient.RequestTransmissionFailed,
        ):
            raise DaemonUnreachable(
                f"the daemon at {self.url} closed the connection without answering"
            ) from None
        reader = _BoundedBody(self.maxAnswer, self._tooBig())
        response.deliverBody(reader)
        if response.length is not UNKNOWN_LENGTH and response.length > self.maxAnswer:
            reader.refuse()
        try:
            data = await reader.done
        except (webclient.ResponseFailed, error.ConnectionLost):
            raise DaemonUnreachable(
                f"the daemon at {self.url} closed the connection mid-answer"
            ) from None
        return response.code, response.headers, data

    def _tooBig(self) -> str:
        return f"the answer from {self.url} is bigger than {self.maxAnswer} bytes"

    def _statusError(self, status: int) -> RPCError:
        """
        The error for an answer with HTTP status C{status} (not 200).
        """
        url = self.url
        if status == 401:
            if self.auth is None:
                return AuthenticationFailed(
                    f"authentication failed: the daemon at {url} requires a user "
                    f"name and password (--auth USER:PASSWORD or BTORRENT_AUTH)"
                )
            return AuthenticationFailed(
                f"authentication failed: the daemon at {url} refused the user "
                f"name or password"
            )
        if status == 403:
            return ProtocolError(
                f"forbidden: the daemon at {url} refuses this client (403: not in "
                f"its rpc-whitelist, or locked out after failed logins)",
                status,
            )
        if status == 421:
            host = urlsplit(url).hostname
            return ProtocolError(
                f"misdirected request: the daemon at {url} refuses the host name "
                f"{host} (421: use its IP address, or add the name to its "
                f"rpc-host-whitelist)",
                status,
            )
        if status == 409:
            return ProtocolError(
                f"the daemon at {url} refused the session id twice (409)", status
            )
        return ProtocolError(
            f"unexpected answer from {url}: HTTP status {status}", status
        )

    def _decode(self, method: str, tag: int, data: bytes) -> Dict[str, Any]:
        """
        The C{arguments} of a reply body, checked.
        """
        url = self.url
        try:
            reply = json.loads(data)
        except (ValueError, RecursionError):
            raise ProtocolError(
                f"the answer from {url} is not JSON (is it a Transmission RPC "
                f"address?)"
            ) from None
        if not isinstance(reply, dict) or not isinstance(reply.get("result"), str):
            raise ProtocolError(
                f"the answer from {url} is not a Transmission RPC reply (no result)"
            )
        if "tag" in reply and reply["tag"] != tag:
            raise ProtocolError(
                f"the answer from {url} carries tag {_oneLine(repr(reply['tag']))}"
                f" instead of {tag}"
            )
        if reply["result"] != "success":
            raise MethodFailed(method, reply["result"])
        arguments = reply.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ProtocolError(
                f"the answer from {url} has arguments that are not an object"
            )
        return arguments


def _connectReason(e: Exception) -> str:
    """
    Why a connection failed, in a few words.
    """
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (error.TimeoutError, error.ConnectingCancelledError)):
        return "timed out"
    if isinstance(e, error.DNSLookupError):
        return "unknown host"
    if isinstance(e, error.NoRouteError):
        return "no route to host"
    text = getattr(e, "osError", None) or e
    return _oneLine(str(text)) or type(e).__name__

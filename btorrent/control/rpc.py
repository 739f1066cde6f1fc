"""
The Transmission-compatible RPC on C{twisted.web}.

L{makeRPCSite} builds the L{Site} the daemon listens with: the RPC at
C{/transmission/rpc} (and C{/transmission/rpc/}, where
C{transmission-remote} posts); C{site.resource} is the root, where the web
page (C{b""}) and C{/metrics} are hung with C{putChild}.

Every request passes Transmission's checks, in its order
(C{rpc-server.c}):

  1. too many failed logins: 403 until restart;
  2. the client address against the whitelist: 403;
  3. Basic authentication, when a user and password are set: 401 with
     C{WWW-Authenticate: Basic realm="Transmission"};

then, for the RPC:

  4. the C{Host} header: an IP literal, C{localhost}, or the host
     whitelist, unless a password is set: 421 (DNS rebinding,
     CVE-2018-5702);
  5. C{X-Transmission-Session-Id}: the current id, else 409 carrying it (a
     GET too: Sonarr, Radarr and Flood open with a GET to learn it).

A body over L{MAX_BODY_SIZE} is refused with 413 as soon as its
C{Content-Length} is known (or, chunked, once that many bytes came),
without being stored.  A POSTed body is JSON C{{"method", "arguments",
"tag"}} whatever its C{Content-Type}; the answer is HTTP 200 with C{{"result",
"arguments", "tag"}} (L{btorrent.control.rpcmethods}).  Every refusal is a
JSON C{result} too.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import treq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ConnectError, DNSLookupError, TimeoutError
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, ResponseFailed
from twisted.web.http import RESPONSES
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from btorrent import __version__
from btorrent.codec.metainfo import MAX_TORRENT_SIZE
from btorrent.control.access import (
    LOGIN_THRESHOLD,
    SESSION_ID_LIFETIME,
    LoginGuard,
    SessionIdSource,
    Whitelist,
    hostAllowed,
    normalAddress,
    rpcBindProblem,
)
from btorrent.control.api import ControlError, ISessionControl
from btorrent.control.rpcfields import transmissionVersion
from btorrent.control.rpcmethods import RPCMethods
from btorrent.util import logs

__all__ = [
    "DEFAULT_WHITELIST",
    "MAX_BODY_SIZE",
    "MAX_JSON_DEPTH",
    "MAX_JSON_OBJECTS",
    "RPC_PATH",
    "SESSION_ID_HEADER",
    "AccessPolicy",
    "ControlSite",
    "RPCResource",
    "makeRPCSite",
    "makeURLFetcher",
    "parseRequestBody",
    "rpcBindProblem",
]

#: Where the RPC lives (and with a trailing slash).
RPC_PATH = b"/transmission/rpc"

#: The anti-CSRF header.
SESSION_ID_HEADER = b"X-Transmission-Session-Id"

#: Transmission's default address whitelist.
DEFAULT_WHITELIST = ("127.0.0.1", "::1")

#: The largest request body taken.
MAX_BODY_SIZE = 32 * 1024 * 1024

#: JSON nesting allowed in a request (real ones need 3).
MAX_JSON_DEPTH = 32

#: Values (counted by commas) allowed in a request.
MAX_JSON_VALUES = 4_000_000

#: Objects (counted by opening braces) allowed in a request: no request
#: of the protocol needs many, and each costs some 200 bytes decoded (a
#: 32 MB body of 4 million empty objects took the daemon to 1 GB).
MAX_JSON_OBJECTS = 10_000

#: A body larger than this (or chunked) is only read once its request
#: passed the checks every page passes (address, password, C{Host}).
EARLY_CHECK_BYTES = 64 * 1024

#: Seconds a connection may stay silent before it is closed.
IDLE_TIMEOUT = 120

#: After a 413, how long the rest of the body is read and dropped before
#: the connection is cut (so that the client sees the answer, not a reset).
LINGER_SECONDS = 10

_REALM = b'Basic realm="Transmission"'
_PHRASES = {421: b"Misdirected Request"}
_CONTAINERS = (list, dict)


def parseRequestBody(body: bytes) -> Any:
    """
    Decode a request body: UTF-8 JSON, nested at most L{MAX_JSON_DEPTH}
    deep, with at most L{MAX_JSON_VALUES} values and L{MAX_JSON_OBJECTS}
    objects.

    The decoder (C, in one pass) runs first; the depth is then checked on
    what it built, container by container.  A scan of the text for
    brackets outside strings took a step per character with a regular
    expression, and a hostile body of escaped quotes made it quadratic
    (a 128 KB body took 39 s of the reactor).

    @raise ValueError: with a short reason.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request body is not UTF-8") from None
    if text.count(",") >= MAX_JSON_VALUES:
        raise ValueError(f"more than {MAX_JSON_VALUES} values")
    if text.count("{") > MAX_JSON_OBJECTS:
        raise ValueError(f"more than {MAX_JSON_OBJECTS} objects")
    try:
        value = json.loads(text, parse_constant=_refuseConstant)
    except RecursionError:
        # The decoder goes some hundreds of levels deep before this.
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _checkDepth(value)
    return value


def _checkDepth(value: Any) -> None:
    """
    @raise ValueError: if C{value} nests lists and objects deeper than
        L{MAX_JSON_DEPTH} (each container is looked at once, level by
        level).
    """
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
        inner = []
        for container in level:
            items = container.values() if type(container) is dict else container
            inner += [item for item in items if type(item) in _CONTAINERS]
        level = inner


def _refuseConstant(name: str) -> None:
    """
    C{NaN}, C{Infinity} and C{-Infinity} are not JSON (Python's decoder
    takes them).
    """
    raise ValueError(f"{name} is not a JSON value")


def _jsonBytes(value: Any) -> bytes:
    """
    A response body: compact JSON in UTF-8 (a string that cannot be
    encoded, a file name with stray bytes say, gets replacement marks).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8", "replace")


def _answer(request: Request, code: int, text: str, headers: Iterable = ()) -> bytes:
    """
    Set up a refusal: status C{code}, a JSON C{result}, and C{headers}.

    @return: the body, for C{render} to return.
    """
    request.setResponseCode(code, RESPONSES.get(code, _PHRASES.get(code)))
    for name, value in headers:
        request.setHeader(name, value)
    request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return _jsonBytes({"result": text, "arguments": {}})


class _Refusal(Resource):
    """
    An answer that ends traversal: a status, a JSON C{result}, headers.
    """

    isLeaf = True

    def __init__(self, code: int, text: str, headers: Iterable = ()) -> None:
        super().__init__()
        self.code = code
        self.text = text
        self.headers = tuple(headers)

    def render(self, request: Request) -> bytes:
        return _answer(request, self.code, self.text, self.headers)


class AccessPolicy:
    """
    Transmission's checks on a request, in its order.

    @ivar whitelist: client addresses allowed.
    @ivar hostWhitelist: host names allowed in C{Host} besides IP literals
        and C{localhost}.
    @ivar logins: the L{LoginGuard}.
    @ivar sessionIds: the L{SessionIdSource}.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        whitelist: Whitelist,
        hostWhitelist: Whitelist,
        logins: LoginGuard,
        sessionIds: SessionIdSource,
    ) -> None:
        self.whitelist = whitelist
        self.hostWhitelist = hostWhitelist
        self.logins = logins
        self.sessionIds = sessionIds

    def refuse(self, request: Request) -> Optional[Resource]:
        """
        The checks every page passes: lockout, address, password, C{Host}
        (the web page and C{/metrics}, which lists every torrent, too: a
        page rebinding its name to 127.0.0.1 could read them).

        @return: the refusal, or C{None} to go on.
        """
        if self.logins.lockedOut:
            return _Refusal(
                403,
                "too many unsuccessful login attempts: restart the daemon",
            )
        address = request.getClientAddress()
        host = normalAddress(getattr(address, "host", "") or "")
        if not self.whitelist.matches(host):
            self.log.info("RPC refused to {client}: not whitelisted", client=host)
            return _Refusal(
                403,
                f"unauthorized IP address {host}: add it to --rpc-whitelist",
            )
        if not self.logins.check(request.getHeader(b"Authorization")):
            if request.getHeader(b"Authorization") is not None:
                self.log.warn(
                    "RPC login failed from {client} ({failures} in a row)",
                    client=host,
                    failures=self.logins.failures,
                )
                if self.logins.lockedOut:
                    self.log.error(
                        "RPC locked after {failures} failed logins in a row: "
                        "restart the daemon to unlock",
                        failures=self.logins.failures,
                    )
            return _Refusal(
                401,
                f"unauthorized user: {self.logins.failures} unsuccessful login attempts",
                [(b"WWW-Authenticate", _REALM)],
            )
        host = request.getHeader(b"Host")
        hostText = None if host is None else host.decode("latin-1")
        if not hostAllowed(hostText, self.hostWhitelist, self.logins.enabled):
            return _Refusal(
                421,
                f"unrecognized host name {hostText!r}: use an IP address, "
                "localhost, a name in --rpc-host-whitelist, or set a password "
                "(DNS rebinding protection)",
            )
        return None

    def refuseRPC(self, request: Request) -> Optional[Resource]:
        """
        The RPC's own check, after L{refuse}'s: the session id.

        @return: the refusal, or C{None} to go on.
        """
        if not self.sessionIds.matches(request.getHeader(SESSION_ID_HEADER)):
            current = self.sessionIds.current()
            return _Refusal(
                409,
                f"invalid session id: send the header "
                f"X-Transmission-Session-Id: {current}",
                [(SESSION_ID_HEADER, current.encode("ascii"))],
            )
        return None


class _JSONNotFound(_Refusal):
    def __init__(self) -> None:
        super().__init__(404, "not found: the RPC is at /transmission/rpc")


class _Directory(Resource):
    """
    A path level (C{/transmission}) whose unknown children and own page are
    JSON 404s.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _JSONNotFound()

    def render(self, request: Request) -> bytes:
        return _JSONNotFound().render(request)


class ControlRoot(_Directory):
    """
    The root of the control site: every request passes
    L{AccessPolicy.refuse} here before reaching a child.  Hang pages with
    C{putChild} (C{b""} for C{/}, C{b"metrics"}, ...).
    """

    def __init__(self, access: AccessPolicy) -> None:
        super().__init__()
        self.access = access

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        refusal = self.access.refuse(request)
        if refusal is not None:
            return refusal
        return super().getChildWithDefault(path, request)

    def render(self, request: Request) -> bytes:
        refusal = self.access.refuse(request)
        if refusal is not None:
            return refusal.render(request)
        return super().render(request)


class RPCResource(Resource):
    """
    C{/transmission/rpc}: the RPC's checks, then the method.
    """

    isLeaf = True
    log = Logger(observer=logs.observer)

    def __init__(self, access: AccessPolicy, methods: RPCMethods) -> None:
        super().__init__()
        self.access = access
        self.methods = methods

    def render(self, request: Request) -> Any:
        if request.postpath not in ([], [b""]):
            return _JSONNotFound().render(request)
        refusal = self.access.refuseRPC(request)
        if refusal is not None:
            return refusal.render(request)
        if request.method != b"POST":
            return _answer(
                request,
                405,
                "method not allowed: POST a JSON request",
                [(b"Allow", b"POST")],
            )
        body = request.content.read()
        try:
            decoded = parseRequestBody(body)
        except ValueError as e:
            return self._reply(request, {"result": str(e), "arguments": {}})
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def reply(response: Dict[str, Any]) -> None:
            if not gone:
                try:
                    body = self._reply(request, response)
                except Exception:
                    self.log.failure("RPC answer cannot be encoded")
                    body = self._reply(
                        request, {"result": "internal error", "arguments": {}}
                    )
                request.setHeader(b"Content-Length", b"%d" % len(body))
                request.write(body)
                request.finish()

        def failed(failure: Any) -> None:
            self.log.failure("RPC answer failed", failure)
            reply({"result": "internal error", "arguments": {}})

        self.methods.handle(decoded).addCallback(reply).addErrback(failed)
        return NOT_DONE_YET

    @staticmethod
    def _reply(request: Request, response: Dict[str, Any]) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return _jsonBytes(response)


class LimitedRequest(Request):
    """
    A request whose body may not exceed its site's C{maxBodySize}: a larger
    C{Content-Length} is answered 413 before any of the body is kept; a
    chunked body is cut off once it grows past the limit.  The rest of the
    body is read and dropped for a few seconds (so that the client reads
    the answer instead of a connection reset), then the connection closes.
    """

    _refused = False
    _received = 0
    _linger = None

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # The body is JSON whatever the Content-Type says
        # (transmission-remote says form-urlencoded): never parse it as a
        # form.
        self._parsePOSTFormSubmission = False

    def _limit(self) -> int:
        site = getattr(self.channel, "site", None)
        return getattr(site, "maxBodySize", MAX_BODY_SIZE)

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > self._limit():
            self._refuse()
            return
        access = getattr(getattr(self.channel, "site", None), "access", None)
        if access is not None and (length is None or length > EARLY_CHECK_BYTES):
            # A large (or chunked) body: the checks every page passes
            # (address, password, Host) before any of it is kept, so that a
            # client they refuse cannot have us store 32 MB per connection.
            refusal = access.refuse(self)
            if refusal is not None:
                self._refuse(refusal.code, refusal.text, refusal.headers)
                return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            self._received += len(data)
            if self._received > 4 * self._limit():
                self.channel.transport.abortConnection()
            return
        self._received += len(data)
        if self._received > self._limit():
            self.content.close()
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            # The whole refused body came: close once the answer is out.
            self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _refuse(
        self, code: int = 413, text: Optional[str] = None, headers: Iterable = ()
    ) -> None:
        """
        Answer on the raw transport (the request line is not even parsed
        into this request yet) and start dropping the body: 413 for a body
        over the limit, or what the access checks said.
        """
        self._refused = True
        self.requestHeaders.removeHeader(b"Expect")
        self.channel.persistent = False
        if text is None:
            text = f"request body larger than {self._limit()} bytes"
        body = _jsonBytes({"result": text, "arguments": {}})
        phrase = RESPONSES.get(code, _PHRASES.get(code, b""))
        extra = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/json; charset=UTF-8\r\n"
            b"Content-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n%s" % (code, phrase, len(body), extra, body)
        )
        loseWrite = getattr(transport, "loseWriteConnection", None)
        if loseWrite is not None:
            loseWrite()
        self._linger = self.channel.callLater(LINGER_SECONDS, transport.abortConnection)


class ControlSite(Site):
    """
    The control plane's site: L{LimitedRequest}s, no tracebacks shown.

    @ivar maxBodySize: the largest request body taken.
    @ivar methods: the L{RPCMethods}.
    @ivar access: the L{AccessPolicy}.
    """

    requestFactory = LimitedRequest
    displayTracebacks = False
    noisy = False

    #: Write an access log line per request (clients poll every few
    #: seconds: off unless asked for).
    accessLog = False

    def __init__(self, root: ControlRoot, methods: RPCMethods, **kw: Any) -> None:
        kw.setdefault("timeout", IDLE_TIMEOUT)
        super().__init__(root, **kw)
        self.maxBodySize = MAX_BODY_SIZE
        self.methods = methods
        self.access = root.access

    def log(self, request: Request) -> None:
        if self.accessLog:
            super().log(request)


class _Discard(Protocol):
    """
    Takes a response body nobody wants by closing its connection.
    """

    def connectionMade(self) -> None:
        self.transport.stopProducing()


def makeURLFetcher(
    reactor: IReactorTCP,
    maxSize: int = MAX_TORRENT_SIZE,
    timeout: float = 60,
) -> Callable[[str, Optional[str]], Deferred]:
    """
    The C{torrent-add} URL fetcher: GET an http(s) URL with C{treq}
    (redirects followed), stopping as soon as the body passes C{maxSize}.

    @return: C{fetch(url, cookies)} giving a L{Deferred} that fires with
        the body or fails with L{ControlError}.
    """
    client = treq.client.HTTPClient(Agent(reactor, connectTimeout=timeout))

    async def fetch(url: str, cookies: Optional[str]) -> bytes:
        headers = {b"User-Agent": [f"btorrent/{__version__}".encode("ascii")]}
        if cookies:
            headers[b"Cookie"] = [cookies.encode("utf-8")]
        chunks: list = []
        size = [0]

        def collect(data: bytes) -> None:
            size[0] += len(data)
            if size[0] > maxSize:
                raise ControlError(f"{url}: larger than {maxSize} bytes")
            chunks.append(data)

        try:
            response = await client.get(
                url,
                headers=headers,
                unbuffered=True,
                reactor=reactor,
                timeout=timeout,
            )
            if response.code != 200:
                phrase = RESPONSES.get(response.code, b"").decode("latin-1")
                response.deliverBody(_Discard())
                raise ControlError(
                    f"gotMetadataFromURL: http error {response.code}: {phrase}"
                )
            length = response.length
            if isinstance(length, int) and length > maxSize:
                response.deliverBody(_Discard())
                raise ControlError(f"{url}: larger than {maxSize} bytes")
            await treq.collect(response, collect).addTimeout(timeout, reactor)
        except ControlError:
            raise
        except (CancelledError, DeferredTimeoutError):
            raise ControlError(
                f"gotMetadataFromURL: {url}: no answer within {timeout:g} s"
            ) from None
        except (ConnectError, DNSLookupError, TimeoutError) as e:
            raise ControlError(f"gotMetadataFromURL: {url}: {e}") from None
        except ResponseFailed as e:
            reasons = "; ".join(str(r.value) for r in e.reasons)
            raise ControlError(f"gotMetadataFromURL: {url}: {reasons}") from None
        except Exception as e:
            raise ControlError(
                f"gotMetadataFromURL: {url}: {type(e).__name__}"
            ) from None
        return b"".join(chunks)

    def fetchDeferred(url: str, cookies: Optional[str]) -> Deferred:
        return Deferred.fromCoroutine(fetch(url, cookies))

    return fetchDeferred


def makeRPCSite(
    session: ISessionControl,
    reactor: Any,
    whitelist: Sequence[str] | str = DEFAULT_WHITELIST,
    hostWhitelist: Sequence[str] | str = (),
    username: Optional[str] = None,
    passwordHash: Optional[str] = None,
    configDir: str = "",
    version: str = __version__,
    fetchURL: Optional[Callable[[str, Optional[str]], Deferred]] = None,
    readFile: Optional[Callable[[str, int], Deferred]] = None,
    maxBodySize: int = MAX_BODY_SIZE,
    loginThreshold: int = LOGIN_THRESHOLD,
    sessionIdLifetime: float = SESSION_ID_LIFETIME,
) -> ControlSite:
    """
    Build the control plane's site with the Transmission RPC.

    @param session: the session API.
    @param reactor: time (C{seconds}, C{callLater}) and, for fetching
        C{torrent-add} URLs, TCP connections.
    @param whitelist: client addresses allowed (patterns, see
        L{Whitelist}).
    @param hostWhitelist: host names allowed in C{Host} besides IP
        literals and C{localhost} (checked only without a password).
    @param username: the Basic user name, or C{None} for no password.
    @param passwordHash: the password, hashed (L{access.hashPassword} or
        Transmission's C{"{"} salted SHA-1), or C{None}.
    @param configDir: C{session-get}'s C{config-dir}.
    @param version: btorrent's version, in C{session-get}'s C{version}.
    @param fetchURL: C{torrent-add}'s URL fetcher (default
        L{makeURLFetcher} on C{reactor}).
    @param readFile: C{torrent-add}'s reader of a local C{.torrent}, off
        the reactor's thread (see L{RPCMethods}).
    @raise ValueError: for a password that is not a known hash, or a user
        without a password.
    @return: a L{ControlSite}; C{site.resource} is the root, to hang the web
        page (C{putChild(b"", page)}) and C{/metrics} on.
    """
    sessionIds = SessionIdSource(reactor.seconds, lifetime=sessionIdLifetime)
    access = AccessPolicy(
        Whitelist(whitelist),
        Whitelist(hostWhitelist),
        LoginGuard(username, passwordHash, threshold=loginThreshold),
        sessionIds,
    )
    if fetchURL is None:
        fetchURL = makeURLFetcher(reactor)
    methods = RPCMethods(
        session,
        reactor,
        sessionIds,
        transmissionVersion(version),
        fetchURL,
        configDir=configDir,
        readFile=readFile,
    )
    root = ControlRoot(access)
    transmission = _Directory()
    root.putChild(b"transmission", transmission)
    transmission.putChild(b"rpc", RPCResource(access, methods))
    site = ControlSite(root, methods, reactor=reactor)
    site.maxBodySize = maxBodySize
    return site

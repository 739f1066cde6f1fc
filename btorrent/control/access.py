"""
Who may talk to the control plane: the rules of Transmission's RPC server
(C{libtransmission/rpc-server.c}) as plain functions and small state
holders, with no network code.

  - L{Whitelist}: address and host patterns (C{*} and C{?} wildcards,
    separated by commas, semicolons or spaces, as C{rpc-whitelist}).
  - L{hostAllowed}: the DNS-rebinding check (CVE-2018-5702) on the C{Host}
    header.
  - L{hashPassword}, L{verifyPassword}: passwords are kept hashed, either
    Transmission's salted SHA-1 (C{"{"} + 40 hex digits + salt, as in its
    C{settings.json}) or PBKDF2-HMAC-SHA256 (C{"pbkdf2-sha256$..."}, what
    L{hashPassword} makes).
  - L{LoginGuard}: Basic credentials checked, failures counted, locked out
    after C{threshold} failures in a row until restart.
  - L{SessionIdSource}: the C{X-Transmission-Session-Id} anti-CSRF token, 48
    random characters, a new one every hour.
  - L{rpcBindProblem}: binding to anything but loopback without a password
    is refused.

Time is a clock callable (seconds); nothing here imports
C{twisted.internet}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import string
from typing import Callable, Iterable, Optional, Tuple

__all__ = [
    "LOGIN_THRESHOLD",
    "SESSION_ID_LENGTH",
    "SESSION_ID_LIFETIME",
    "LoginGuard",
    "SessionIdSource",
    "Whitelist",
    "checkPasswordHash",
    "hashPassword",
    "hostAllowed",
    "isLoopback",
    "normalAddress",
    "parseBasicAuthorization",
    "rpcBindProblem",
    "transmissionHash",
    "verifyPassword",
]

#: Failed logins in a row before every request is refused until restart
#: (Transmission's C{anti-brute-force-threshold}).
LOGIN_THRESHOLD = 100

#: Length and lifetime (seconds) of the anti-CSRF session id.
SESSION_ID_LENGTH = 48
SESSION_ID_LIFETIME = 3600

_SESSION_ID_ALPHABET = string.ascii_letters + string.digits

#: PBKDF2 iterations of a new hash.  A check costs about this many
#: HMAC-SHA256 rounds; L{LoginGuard} remembers credentials that passed, so
#: only the first request of a client and wrong passwords pay it.
PBKDF2_ITERATIONS = 200_000

_PBKDF2_PREFIX = "pbkdf2-sha256$"
_MAX_PBKDF2_ITERATIONS = 10_000_000
_SSHA1_SALT_ALPHABET = string.digits + string.ascii_letters + "./"
_SSHA1 = re.compile(r"^\{[0-9a-fA-F]{40}")


class Whitelist:
    """
    A list of patterns (Transmission's C{rpc-whitelist} and
    C{rpc-host-whitelist}): C{*} matches any run of characters, C{?} one
    character; entries are separated by commas, semicolons or spaces.

    @ivar patterns: the patterns, lower case.
    """

    def __init__(self, patterns: Iterable[str] | str) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        entries = []
        for item in patterns:
            for entry in re.split(r"[ ,;]+", item):
                if entry:
                    entries.append(entry.lower())
        self.patterns: Tuple[str, ...] = tuple(entries)

    def __repr__(self) -> str:
        return f"Whitelist({','.join(self.patterns)!r})"

    def matches(self, name: str) -> bool:
        """
        @param name: an address (see L{normalAddress}) or a host name.
        @return: whether a pattern matches it (case-insensitively).
        """
        name = name.lower()
        return any(_wildmat(name, pattern) for pattern in self.patterns)


def _wildmat(name: str, pattern: str) -> bool:
    """
    Transmission's C{tr_wildmat} for the patterns people write: C{*} and
    C{?}; any other character, C{[} included, stands for itself.
    """
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, name, re.DOTALL) is not None


def normalAddress(host: str) -> str:
    """
    A client address as the whitelist sees it: an IPv4-mapped IPv6 address
    (C{::ffff:127.0.0.1}, from a dual-stack socket) becomes the IPv4 one;
    IPv6 is in its compressed form without a zone.

    @param host: the peer's address as the transport gives it.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def isLoopback(host: str) -> bool:
    """
    @return: whether C{host} is a loopback address (C{127.0.0.0/8},
        C{::1}, or the name C{localhost}).
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(normalAddress(host)).is_loopback
    except ValueError:
        return False


def _isIPLiteralWithOptionalPort(host: str) -> bool:
    """
    Whether a C{Host} header is an IP address, with an optional port:
    C{1.2.3.4}, C{1.2.3.4:9091}, C{[::1]}, C{[::1]:9091} or C{::1}.
    """
    port = ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        address, rest = host[1:end], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
    elif host.count(":") == 1:
        address, port = host.split(":")
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return False
    else:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
    if port and not (port.isdigit() and port.isascii() and int(port) <= 65535):
        return False
    return True


def hostAllowed(
    host: Optional[str], hostWhitelist: Whitelist, passwordEnabled: bool
) -> bool:
    """
    Transmission's defence against DNS rebinding: a browser tricked into
    posting to C{evil.example} that resolves to 127.0.0.1 sends C{Host:
    evil.example}.

    @param host: the C{Host} header, or C{None} when there is none.
    @param hostWhitelist: host names allowed besides IP literals and
        C{localhost}.
    @param passwordEnabled: with a password, any host is allowed (the
        attacker's page does not know it).
    @return: whether the request may go on.
    """
    if passwordEnabled:
        return True
    if host is None:
        return False
    host = host.strip()
    if _isIPLiteralWithOptionalPort(host):
        return True
    hostname = host.split(":", 1)[0].lower()
    if hostname in ("localhost", "localhost."):
        return True
    return hostWhitelist.matches(hostname)


def hashPassword(
    password: str, iterations: int = PBKDF2_ITERATIONS, salt: Optional[bytes] = None
) -> str:
    """
    Hash a password for keeping (PBKDF2-HMAC-SHA256 with a random salt).

    @return: C{"pbkdf2-sha256$ITERATIONS$SALT$HASH"}, salt and hash in
        base64.
    """
    if salt is None:
        salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "{}{}${}${}".format(
        _PBKDF2_PREFIX,
        iterations,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(digest).decode("ascii"),
    )


def transmissionHash(password: str, salt: Optional[str] = None) -> str:
    """
    Transmission's salted SHA-1 (C{tr_ssha1}): C{"{"}, the hex SHA-1 of the
    password followed by the salt, then the 8-character salt.  For tests
    and for reading a Transmission C{settings.json}; L{hashPassword} is the
    stronger choice.
    """
    if salt is None:
        salt = "".join(secrets.choice(_SSHA1_SALT_ALPHABET) for _ in range(8))
    digest = hashlib.sha1(password.encode("utf-8") + salt.encode("utf-8"))
    return "{" + digest.hexdigest() + salt


def checkPasswordHash(stored: str) -> None:
    """
    @raise ValueError: if C{stored} is not a hash L{verifyPassword} knows
        (a plain-text password, say).
    """
    if _SSHA1.match(stored):
        return
    if stored.startswith(_PBKDF2_PREFIX):
        parts = stored[len(_PBKDF2_PREFIX) :].split("$")
        if len(parts) == 3 and parts[0].isdigit():
            iterations = int(parts[0])
            try:
                base64.b64decode(parts[1], validate=True)
                digest = base64.b64decode(parts[2], validate=True)
            except (binascii.Error, ValueError):
                pass
            else:
                if 1 <= iterations <= _MAX_PBKDF2_ITERATIONS and len(digest) == 32:
                    return
    raise ValueError(
        "the RPC password must be stored hashed: "
        '"pbkdf2-sha256$..." or Transmission\'s "{..." salted SHA-1'
    )


def verifyPassword(stored: str, password: str) -> bool:
    """
    @param stored: a hash from L{hashPassword} or Transmission's
        C{settings.json}.
    @param password: what the client sent.
    @return: whether they match (a malformed C{stored} matches nothing).
    """
    try:
        checkPasswordHash(stored)
    except ValueError:
        return False
    secret = password.encode("utf-8", "surrogateescape")
    if stored.startswith("{"):
        salt = stored[41:].encode("utf-8", "surrogateescape")
        digest = hashlib.sha1(secret + salt).hexdigest()
        return hmac.compare_digest(digest, stored[1:41].lower())
    iterations, salt, expected = stored[len(_PBKDF2_PREFIX) :].split("$")
    digest = hashlib.pbkdf2_hmac(
        "sha256", secret, base64.b64decode(salt), int(iterations)
    )
    return hmac.compare_digest(digest, base64.b64decode(expected))


def parseBasicAuthorization(header: Optional[bytes]) -> Optional[Tuple[str, str]]:
    """
    @param header: an C{Authorization} header value.
    @return: C{(user, password)} of a well-formed Basic header, else
        C{None}.
    """
    if header is None or header[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return (
        user.decode("utf-8", "surrogateescape"),
        password.decode("utf-8", "surrogateescape"),
    )


class LoginGuard:
    """
    Basic authentication with Transmission's lockout: after C{threshold}
    failed logins in a row, nothing is accepted until the daemon restarts
    (a success resets the count).

    A request without credentials is challenged but not counted: browsers
    and C{transmission-remote} always start that way.

    Credentials that passed are remembered by an HMAC under a key of this
    process, so a slow hash is computed once per client, not per request.

    @ivar failures: failed logins in a row.
    """

    def __init__(
        self,
        username: Optional[str],
        passwordHash: Optional[str],
        threshold: int = LOGIN_THRESHOLD,
    ) -> None:
        """
        @param username: the user name; C{None} (with C{passwordHash}) for
            no authentication.
        @param passwordHash: see L{verifyPassword}.
        @raise ValueError: for a password that is not a known hash, or one
            of the two without the other.
        """
        if (username is None) != (passwordHash is None):
            raise ValueError("the RPC needs both a user name and a password, or none")
        if passwordHash is not None:
            checkPasswordHash(passwordHash)
        self.username = username
        self._passwordHash = passwordHash
        self.threshold = threshold
        self.failures = 0
        self._key = os.urandom(32)
        self._accepted: set = set()

    @property
    def enabled(self) -> bool:
        """
        Whether a password is required.
        """
        return self._passwordHash is not None

    @property
    def lockedOut(self) -> bool:
        """
        Whether too many logins failed (until restart).
        """
        return self.failures >= self.threshold

    def check(self, authorization: Optional[bytes]) -> bool:
        """
        @param authorization: the request's C{Authorization} header.
        @return: whether the request is authenticated (always, without a
            password).  A wrong user name or password counts a failure.
        """
        if self._passwordHash is None:
            return True
        credentials = parseBasicAuthorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.new(
            self._key,
            user.encode("utf-8", "surrogateescape")
            + b"\x00"
            + password.encode("utf-8", "surrogateescape"),
            hashlib.sha256,
        ).digest()
        if token in self._accepted:
            self.failures = 0
            return True
        userOK = hmac.compare_digest(
            user.encode("utf-8", "surrogateescape"),
            (self.username or "").encode("utf-8", "surrogateescape"),
        )
        passwordOK = verifyPassword(self._passwordHash, password)
        if userOK and passwordOK:
            if len(self._accepted) >= 16:
                self._accepted.clear()
            self._accepted.add(token)
            self.failures = 0
            return True
        self.failures += 1
        return False


class SessionIdSource:
    """
    The anti-CSRF token: 48 random letters and digits, replaced every
    C{lifetime} seconds.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        lifetime: float = SESSION_ID_LIFETIME,
        choose: Callable[[str], str] = secrets.choice,
    ) -> None:
        """
        @param clock: seconds, e.g. C{reactor.seconds}.
        @param choose: picks one character (tests may make it predictable).
        """
        self._clock = clock
        self._lifetime = lifetime
        self._choose = choose
        self._current: Optional[str] = None
        self._expiresAt = 0.0

    def current(self) -> str:
        """
        @return: the id now in force (a new one once the old has expired).
        """
        now = self._clock()
        if self._current is None or now >= self._expiresAt:
            self._current = "".join(
                self._choose(_SESSION_ID_ALPHABET) for _ in range(SESSION_ID_LENGTH)
            )
            self._expiresAt = now + self._lifetime
        return self._current

    def matches(self, theirs: Optional[bytes]) -> bool:
        """
        @param theirs: the request's C{X-Transmission-Session-Id} header.
        """
        if theirs is None:
            return False
        return hmac.compare_digest(theirs, self.current().encode("ascii"))


def rpcBindProblem(
    bindAddress: str, username: Optional[str], passwordHash: Optional[str]
) -> Optional[str]:
    """
    The start-up rule: the RPC controls the daemon (adds torrents, deletes
    data), so listening beyond this machine needs a password.

    @param bindAddress: the address the RPC listens on.
    @return: C{None} if the configuration is acceptable, else one line
        saying what is wrong and what to do.
    """
    try:
        ipaddress.ip_address(bindAddress.split("%", 1)[0])
    except ValueError:
        if bindAddress.lower() not in ("localhost", "localhost."):
            return f"--rpc-bind {bindAddress!r} is not an IP address"
    if isLoopback(bindAddress):
        return None
    if username is None or passwordHash is None:
        return (
            f"refusing to serve the RPC on {bindAddress} without a password: "
            "set --rpc-username and --rpc-password-file, or bind to 127.0.0.1"
        )
    return None

"""
The RPC's access rules (L{btorrent.control.access}): whitelists with
wildcards, the DNS-rebinding Host check, hashed passwords (Transmission's
salted SHA-1 and PBKDF2), Basic credentials, the lockout after 100 failed
logins, the hourly session id, and the bind rule.
"""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from btorrent.control.access import (
    LOGIN_THRESHOLD,
    SESSION_ID_LENGTH,
    LoginGuard,
    SessionIdSource,
    Whitelist,
    checkPasswordHash,
    hashPassword,
    hostAllowed,
    isLoopback,
    normalAddress,
    parseBasicAuthorization,
    rpcBindProblem,
    transmissionHash,
    verifyPassword,
)

#: A cheap hash for tests that check many logins.
FAST = hashPassword("s3cret", iterations=1000)


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class WhitelistTests(SynchronousTestCase):
    """
    L{Whitelist} reads Transmission's C{rpc-whitelist} syntax.
    """

    def test_default(self) -> None:
        """
        The default list takes loopback only.
        """
        w = Whitelist(["127.0.0.1", "::1"])
        self.assertTrue(w.matches("127.0.0.1"))
        self.assertTrue(w.matches("::1"))
        self.assertFalse(w.matches("127.0.0.2"))
        self.assertFalse(w.matches("192.168.1.2"))

    def test_wildcards(self) -> None:
        """
        C{*} matches any run of characters, C{?} one; separators are
        commas, semicolons and spaces; C{[} stands for itself.
        """
        w = Whitelist("192.168.*.*; 10.0.0.? ,fe80::*")
        self.assertEqual(w.patterns, ("192.168.*.*", "10.0.0.?", "fe80::*"))
        self.assertTrue(w.matches("192.168.1.20"))
        self.assertTrue(w.matches("10.0.0.7"))
        self.assertFalse(w.matches("10.0.0.17"))
        self.assertTrue(w.matches("fe80::1"))
        self.assertFalse(w.matches("192.169.1.1"))
        self.assertTrue(Whitelist("[a]").matches("[a]"))
        self.assertFalse(Whitelist("[ab]").matches("a"))

    def test_empty(self) -> None:
        """
        An empty list matches nothing.
        """
        self.assertFalse(Whitelist("").matches("127.0.0.1"))
        self.assertFalse(Whitelist([]).matches(""))

    def test_normalAddress(self) -> None:
        """
        An IPv4-mapped IPv6 address (a dual-stack socket) is compared as
        IPv4; IPv6 is compressed; a zone is dropped.
        """
        self.assertEqual(normalAddress("::ffff:127.0.0.1"), "127.0.0.1")
        self.assertEqual(normalAddress("0:0:0:0:0:0:0:1"), "::1")
        self.assertEqual(normalAddress("fe80::1%eth0"), "fe80::1")
        self.assertEqual(normalAddress("unix"), "unix")

    def test_loopback(self) -> None:
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"]:
            self.assertTrue(isLoopback(host), host)
        for host in ["0.0.0.0", "::", "192.168.1.1", "example.com", ""]:
            self.assertFalse(isLoopback(host), host)


class HostTests(SynchronousTestCase):
    """
    L{hostAllowed}: Transmission's answer to DNS rebinding.
    """

    def test_literalsAndLocalhost(self) -> None:
        """
        IP literals, with or without a port, and C{localhost} pass.
        """
        none = Whitelist("")
        for host in [
            "127.0.0.1",
            "127.0.0.1:9091",
            "192.168.1.5:80",
            "[::1]",
            "[::1]:9091",
            "::1",
            "localhost",
            "localhost:9091",
            "LOCALHOST.:9091",
        ]:
            self.assertTrue(hostAllowed(host, none, False), host)

    def test_foreign(self) -> None:
        """
        A name (the attacker's) is refused, as are a missing header and
        malformed literals.
        """
        none = Whitelist("")
        for host in [
            None,
            "",
            "evil.example",
            "evil.example:9091",
            "127.0.0.1.evil.example",
            "[::1",
            "[::1]x",
            "[nothex]:1",
            "1.2.3.4:port",
            "1.2.3.4:99999",
            "localhost.evil",
        ]:
            self.assertFalse(hostAllowed(host, none, False), host)

    def test_hostWhitelist(self) -> None:
        """
        Names in the host whitelist pass, case-insensitively, port or not.
        """
        allowed = Whitelist("nas.lan,*.home.arpa")
        self.assertTrue(hostAllowed("NAS.lan:9091", allowed, False))
        self.assertTrue(hostAllowed("box.home.arpa", allowed, False))
        self.assertFalse(hostAllowed("nas.lan.evil", allowed, False))

    def test_passwordAllowsAny(self) -> None:
        """
        With a password, any host name passes.
        """
        self.assertTrue(hostAllowed("evil.example", Whitelist(""), True))
        self.assertTrue(hostAllowed(None, Whitelist(""), True))

    @given(st.text(max_size=100))
    @settings(max_examples=150)
    def test_garbage(self, host: str) -> None:
        """
        Any header gives an answer, never an exception.
        """
        self.assertIsInstance(hostAllowed(host, Whitelist("*.lan"), False), bool)


class PasswordTests(SynchronousTestCase):
    """
    Passwords are kept hashed.
    """

    def test_transmissionHash(self) -> None:
        """
        Transmission's C{{} salted SHA-1: SHA-1 of password + salt, in hex,
        then the salt.  A hash from a Transmission settings.json checks.
        """
        salt = "abcdEFGH"
        stored = "{" + hashlib.sha1(b"hunter2" + salt.encode()).hexdigest() + salt
        self.assertEqual(transmissionHash("hunter2", salt), stored)
        self.assertTrue(verifyPassword(stored, "hunter2"))
        self.assertFalse(verifyPassword(stored, "hunter3"))
        self.assertFalse(verifyPassword(stored, ""))
        fresh = transmissionHash("x")
        self.assertEqual(len(fresh), 49)
        self.assertTrue(verifyPassword(fresh, "x"))

    def test_pbkdf2(self) -> None:
        """
        L{hashPassword} makes PBKDF2-HMAC-SHA256 with a random salt.
        """
        stored = hashPassword("correct horse", iterations=2000)
        self.assertTrue(stored.startswith("pbkdf2-sha256$2000$"))
        self.assertTrue(verifyPassword(stored, "correct horse"))
        self.assertFalse(verifyPassword(stored, "correct horsE"))
        self.assertNotEqual(stored, hashPassword("correct horse", iterations=2000))
        salt = b"0123456789abcdef"
        expected = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 2000)
        self.assertEqual(
            hashPassword("pw", 2000, salt),
            "pbkdf2-sha256$2000$"
            + base64.b64encode(salt).decode()
            + "$"
            + base64.b64encode(expected).decode(),
        )

    def test_plainTextRefused(self) -> None:
        """
        A plain-text or malformed password is not a hash: it matches
        nothing and L{checkPasswordHash} says so.
        """
        for stored in [
            "hunter2",
            "",
            "{short",
            "pbkdf2-sha256$x$y$z",
            "pbkdf2-sha256$0$AAAA$" + base64.b64encode(bytes(32)).decode(),
            "pbkdf2-sha256$99999999999$AAAA$" + base64.b64encode(bytes(32)).decode(),
            "pbkdf2-sha256$1000$AAAA$AAAA",
        ]:
            self.assertFalse(verifyPassword(stored, stored), stored)
            self.assertRaises(ValueError, checkPasswordHash, stored)


class BasicTests(SynchronousTestCase):
    """
    L{parseBasicAuthorization} reads C{Authorization: Basic ...}.
    """

    def test_wellFormed(self) -> None:
        self.assertEqual(
            parseBasicAuthorization(basic("user", "pa:ss")), ("user", "pa:ss")
        )
        self.assertEqual(
            parseBasicAuthorization(b"bAsIc " + base64.b64encode(b"u:")), ("u", "")
        )

    def test_malformed(self) -> None:
        for header in [
            None,
            b"",
            b"Bearer abc",
            b"Basic",
            b"Basic !!!",
            b"Basic " + base64.b64encode(b"nocolon"),
        ]:
            self.assertIsNone(parseBasicAuthorization(header), header)

    @given(st.binary(max_size=200))
    @settings(max_examples=300)
    def test_garbage(self, data: bytes) -> None:
        """
        Any header bytes give credentials or C{None}, never an exception.
        """
        result = parseBasicAuthorization(b"Basic " + data)
        self.assertTrue(result is None or len(result) == 2)


class LoginGuardTests(SynchronousTestCase):
    """
    L{LoginGuard}: Basic authentication with Transmission's lockout.
    """

    def test_noPassword(self) -> None:
        """
        Without a password everything passes and nothing is counted.
        """
        guard = LoginGuard(None, None)
        self.assertFalse(guard.enabled)
        self.assertTrue(guard.check(None))
        self.assertTrue(guard.check(basic("a", "b")))
        self.assertEqual(guard.failures, 0)

    def test_halfConfigured(self) -> None:
        """
        A user without a password, or a plain-text password, is refused at
        construction.
        """
        self.assertRaises(ValueError, LoginGuard, "user", None)
        self.assertRaises(ValueError, LoginGuard, None, FAST)
        self.assertRaises(ValueError, LoginGuard, "user", "plain")

    def test_check(self) -> None:
        """
        The right user and password pass; no credentials are challenged
        without counting; a wrong user or password counts.
        """
        guard = LoginGuard("user", FAST)
        self.assertTrue(guard.enabled)
        self.assertFalse(guard.check(None))
        self.assertEqual(guard.failures, 0)
        self.assertFalse(guard.check(basic("user", "wrong")))
        self.assertFalse(guard.check(basic("other", "s3cret")))
        self.assertEqual(guard.failures, 2)
        self.assertTrue(guard.check(basic("user", "s3cret")))
        self.assertEqual(guard.failures, 0)
        # The second time comes from the remembered HMAC.
        self.assertTrue(guard.check(basic("user", "s3cret")))

    def test_lockout(self) -> None:
        """
        After 100 failures in a row, even the right password is locked
        out (until restart: a new guard).
        """
        self.assertEqual(LOGIN_THRESHOLD, 100)
        guard = LoginGuard("user", FAST)
        self.assertTrue(guard.check(basic("user", "s3cret")))
        for i in range(99):
            self.assertFalse(guard.check(basic("user", f"guess{i}")))
        self.assertFalse(guard.lockedOut)
        self.assertFalse(guard.check(basic("user", "guess99")))
        self.assertTrue(guard.lockedOut)

    def test_successResets(self) -> None:
        """
        A success resets the count, as in Transmission.
        """
        guard = LoginGuard("user", FAST, threshold=3)
        guard.check(basic("user", "x"))
        guard.check(basic("user", "y"))
        guard.check(basic("user", "s3cret"))
        guard.check(basic("user", "z"))
        self.assertEqual(guard.failures, 1)
        self.assertFalse(guard.lockedOut)


class SessionIdTests(SynchronousTestCase):
    """
    L{SessionIdSource}: 48 random characters, a new one every hour.
    """

    def test_rotation(self) -> None:
        clock = Clock()
        source = SessionIdSource(clock.seconds)
        first = source.current()
        self.assertEqual(len(first), SESSION_ID_LENGTH)
        self.assertEqual(len(first), 48)
        self.assertTrue(first.isalnum() and first.isascii())
        clock.advance(3599)
        self.assertEqual(source.current(), first)
        self.assertTrue(source.matches(first.encode()))
        clock.advance(1)
        second = source.current()
        self.assertNotEqual(second, first)
        self.assertFalse(source.matches(first.encode()))
        self.assertTrue(source.matches(second.encode()))

    def test_matches(self) -> None:
        source = SessionIdSource(Clock().seconds)
        current = source.current().encode()
        self.assertFalse(source.matches(None))
        self.assertFalse(source.matches(b""))
        self.assertFalse(source.matches(current[:-1]))
        self.assertFalse(source.matches(current + b"x"))
        self.assertFalse(source.matches("é".encode() * 24))

    def test_random(self) -> None:
        """
        Two sources give different ids.
        """
        clock = Clock()
        self.assertNotEqual(
            SessionIdSource(clock.seconds).current(),
            SessionIdSource(clock.seconds).current(),
        )


class BindTests(SynchronousTestCase):
    """
    L{rpcBindProblem}: beyond loopback only with a password.
    """

    def test_loopback(self) -> None:
        for address in ["127.0.0.1", "::1", "127.0.0.2", "localhost"]:
            self.assertIsNone(rpcBindProblem(address, None, None), address)

    def test_publicWithoutPassword(self) -> None:
        for address in ["0.0.0.0", "::", "192.168.1.10"]:
            problem = rpcBindProblem(address, None, None)
            self.assertIn("without a password", problem)
            self.assertIn(address, problem)
            self.assertNotIn("\n", problem)

    def test_publicWithPassword(self) -> None:
        self.assertIsNone(rpcBindProblem("0.0.0.0", "user", FAST))

    def test_notAnAddress(self) -> None:
        problem = rpcBindProblem("example.com", "user", FAST)
        self.assertIn("not an IP address", problem)

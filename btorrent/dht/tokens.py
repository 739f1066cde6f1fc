"""
The tokens a DHT node hands out with C{get_peers} answers (BEP 5).

A token is an HMAC-SHA1 of the requester's IP and the info-hash under a
secret rotated every L{TOKEN_ROTATION} seconds; the previous secret is
still accepted, so a token lives 5 to 10 minutes.  Pure: time comes as a
value.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["TOKEN_LENGTH", "TOKEN_ROTATION", "TokenSecrets"]

#: Seconds between token secret rotations.
TOKEN_ROTATION = 5 * 60.0
#: Bytes of a token we hand out.
TOKEN_LENGTH = 8


class TokenSecrets:
    """
    The current and the previous secret, and the tokens made with them.
    """

    def __init__(self, rng, now: float) -> None:
        """
        @param rng: a C{random.Random} for the secrets.
        @param now: the time now (seconds).
        """
        self.rng = rng
        self._secrets = [self._newSecret(), self._newSecret()]
        self._secretTime = now

    def _newSecret(self) -> bytes:
        return self.rng.getrandbits(160).to_bytes(20, "big")

    def rotate(self, now: float) -> None:
        """
        Take a new secret if the current one is older than
        L{TOKEN_ROTATION} (two if both are too old).
        """
        elapsed = now - self._secretTime
        if elapsed < TOKEN_ROTATION:
            return
        if elapsed >= 2 * TOKEN_ROTATION:
            self._secrets = [self._newSecret(), self._newSecret()]
            self._secretTime = now
            return
        self._secrets = [self._newSecret(), self._secrets[0]]
        self._secretTime += TOKEN_ROTATION

    def _token(self, secret: bytes, host: str, infoHash: bytes) -> bytes:
        digest = hmac.new(secret, host.encode("ascii") + infoHash, hashlib.sha1)
        return digest.digest()[:TOKEN_LENGTH]

    def make(self, host: str, infoHash: bytes, now: float) -> bytes:
        """
        The token we give C{host} for announcing C{infoHash}.
        """
        self.rotate(now)
        return self._token(self._secrets[0], host, infoHash)

    def check(self, token: bytes, host: str, infoHash: bytes, now: float) -> bool:
        """
        Whether C{token} is one we gave C{host} for C{infoHash} under the
        current or the previous secret.
        """
        self.rotate(now)
        return any(
            hmac.compare_digest(token, self._token(secret, host, infoHash))
            for secret in self._secrets
        )

"""
Extension dispatch by name on one connection (BEP 10), without I/O:
L{ExtensionDispatch} knows our extension ids and limits (from what we
offer) and the peer's (from its extended handshakes), turns a received
C{Extended} message into an event, and gives the id to send a named
extension's message under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from btorrent.codec import bencode
from btorrent.codec.wire import Extended

__all__ = [
    "ExtensionDispatch",
    "ExtensionHandshake",
    "ExtensionMessage",
    "MAX_EXTENSION_HANDSHAKE",
]

#: The longest BEP 10 handshake we take (libtorrent's limit is 1000 bytes
#: of dictionary for its own, and rejects bigger ones from others).
MAX_EXTENSION_HANDSHAKE = 64 * 1024


@dataclass(frozen=True)
class ExtensionHandshake:
    """
    A BEP 10 handshake: its decoded dictionary (keys as C{str}), the
    peer's extension ids already recorded in
    L{ExtensionDispatch.peerIds}.
    """

    fields: Dict[str, Any]


@dataclass(frozen=True)
class ExtensionMessage:
    """
    A BEP 10 message for our extension C{name}.
    """

    name: str
    payload: bytes


class ExtensionDispatch:
    """
    The BEP 10 ids of one connection, both ways.

    @ivar peerIds: the peer's ids, C{name -> id} (this very dict is the
        connection's C{peerExtensions}).
    @ivar limit: the longest extension message we take (the handshake's
        limit included when we offer any extension), 0 without any.
    """

    __slots__ = ("peerIds", "limit", "_ours", "_table")

    def __init__(self, extensions: Sequence[Tuple[str, int, int]] = ()) -> None:
        """
        @param extensions: what we offer, as C{(name, ourId, maxPayload)}.
        """
        self.peerIds: Dict[str, int] = {}
        self.offer(extensions)

    def offer(self, extensions: Sequence[Tuple[str, int, int]]) -> None:
        """
        Set what we offer (an incoming connection learns it when routed).

        @param extensions: C{(name, ourId, maxPayload)} triples.
        """
        self._ours: Dict[int, Tuple[str, int]] = {
            ourId: (name, limit) for name, ourId, limit in extensions
        }
        self._table = {name: ourId for name, ourId, _ in extensions}
        self.limit = max(
            [limit for _, _, limit in extensions]
            + ([MAX_EXTENSION_HANDSHAKE] if extensions else [0])
        )

    def received(self, message: Extended) -> Tuple[Optional[Any], Optional[str]]:
        """
        An C{Extended} message from the peer: a handshake records the
        peer's ids; a message for one of our extensions is named; one for
        an id we do not use is ignored (a peer may send what we disabled),
        and so is a handshake that is not a bencoded dictionary (as
        libtorrent does).

        @return: C{(event, None)}: an L{ExtensionHandshake}, an
            L{ExtensionMessage} or C{None} (nothing to report); or
            C{(None, reason)} when the peer broke the protocol.
        """
        payload = message.payload
        if message.extendedId == 0:
            if len(payload) > MAX_EXTENSION_HANDSHAKE:
                return None, "extension handshake too long"
            try:
                fields = bencode.decode(payload)
            except bencode.BencodeError:
                return None, None
            if not isinstance(fields, dict):
                return None, None
            self._recordPeerIds(fields.get(b"m"))
            return (
                ExtensionHandshake(
                    {
                        key.decode("utf-8", "replace"): value
                        for key, value in fields.items()
                        if isinstance(key, bytes)
                    }
                ),
                None,
            )
        known = self._ours.get(message.extendedId)
        if known is None:
            return None, None
        name, limit = known
        if len(payload) > limit:
            return None, (
                f"{name} message of {len(payload)} bytes, longest allowed {limit}"
            )
        return ExtensionMessage(name, payload), None

    def _recordPeerIds(self, table: Any) -> None:
        """
        Record the peer's extension ids from a handshake's C{m}: a later
        handshake adds and changes ids, and id 0 turns a name off.
        """
        if not isinstance(table, dict):
            return
        for key, value in list(table.items())[:256]:
            if not isinstance(key, bytes) or type(value) is not int:
                continue
            name = key.decode("utf-8", "replace")
            if value == 0:
                self.peerIds.pop(name, None)
            elif 0 < value < 256:
                self.peerIds[name] = value

    def messageFor(self, name: str, payload: bytes) -> Optional[Extended]:
        """
        The message carrying C{payload} to the peer's extension C{name},
        or C{None} if the peer does not support it.
        """
        peerId = self.peerIds.get(name)
        if peerId is None:
            return None
        return Extended(peerId, payload)

    def handshake(self, fields: Dict[str, Any]) -> Extended:
        """
        Our BEP 10 handshake: C{m} from our extensions, and C{fields}
        (C{p}, C{v}, C{reqq}, C{metadata_size}, C{yourip}...).
        """
        return Extended(0, bencode.encode({**fields, "m": self._table}))

"""
Serving our info dictionary to peers (BEP 9, C{ut_metadata}) once a torrent
has it, and sending our extended handshake.

L{MetadataService} is the C{ut_metadata} handler of a torrent's
L{btorrent.engine.downloader.Downloader}: to every peer that sets the BEP
10 bit it sends our extended handshake (with C{metadata_size}: a magnet
link's leecher asks us then), and it answers requests with
L{btorrent.peer.utmetadata.MetadataServer} (a reject for a piece out of
range, or once a peer has had a few copies).  Data and reject messages are
ignored: we never ask a torrent's peers for its metadata once we have it.
A message we cannot read gets the peer dropped, as libtorrent drops it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from twisted.logger import Logger
from zope.interface import implementer

from btorrent.engine.extensions import handshakeFields
from btorrent.interfaces import IPeerExtension
from btorrent.peer.extended import UT_METADATA
from btorrent.peer.utmetadata import (
    MetadataMessageError,
    MetadataRequest,
    MetadataServer,
    decodeMetadataMessage,
    encodeMetadataMessage,
)
from btorrent.util import logs

__all__ = ["MetadataService", "handleMetadataRequest"]


def handleMetadataRequest(server: MetadataServer, peer, payload: bytes):
    """
    Read a C{ut_metadata} payload from C{peer}; answer a request from
    C{server}.

    @return: the decoded message (C{None} for an unknown kind), after the
        answer to a request was sent.
    @raise MetadataMessageError: if the payload cannot be read.
    """
    message = decodeMetadataMessage(payload)
    if type(message) is MetadataRequest:
        reply = server.respond(message, peer)
        peer.sendExtended(UT_METADATA, encodeMetadataMessage(reply))
    return message


@implementer(IPeerExtension)
class MetadataService:
    """
    The C{ut_metadata} side of a torrent with its metadata.

    @ivar server: the L{MetadataServer} over our info dictionary.
    """

    log = Logger(observer=logs.observer)

    def __init__(
        self,
        infoBytes: bytes,
        listenPort: Callable[[], int],
        logFields: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """
        @param infoBytes: the info dictionary, exactly as hashed.
        @param listenPort: gives our listen port (for C{p}).
        @param logFields: fields every log line carries (the torrent's).
        """
        self.server = MetadataServer(infoBytes)
        self.listenPort = listenPort
        self.logFields: Dict[str, Any] = dict(logFields or {})

    def peerConnected(self, peer) -> None:
        """
        Send our extended handshake (nothing if the peer does not speak
        BEP 10).
        """
        if getattr(peer, "extended", False):
            peer.sendExtensionHandshake(
                handshakeFields(peer, self.listenPort(), self.server.metadataSize)
            )

    def handshakeReceived(self, peer, fields) -> None:
        """
        Nothing to do: the peer's ids are the connection's.
        """

    def messageReceived(self, peer, payload: bytes) -> None:
        """
        Answer a request; ignore data and rejects; drop a peer whose
        message cannot be read.
        """
        try:
            handleMetadataRequest(self.server, peer, payload)
        except MetadataMessageError as e:
            self.log.info(
                "dropping {host}:{port}: {reason}",
                host=peer.address[0],
                port=peer.address[1],
                reason=str(e),
                **self.logFields,
            )
            peer.drop(str(e))

    def peerLost(self, peer) -> None:
        """
        Forget what we served C{peer}.
        """
        self.server.removePeer(peer)

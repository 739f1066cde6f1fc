"""
The BEP 10 handlers a torrent with its metadata runs: the C{ut_metadata}
server (L{btorrent.engine.metadataserver}), which also sends our extended
handshake to every peer that sets the BEP 10 bit, and peer exchange
(L{btorrent.engine.pex}).  A private torrent (BEP 27) gets neither, and no
BEP 10 bit: libtorrent does the same (no PEX, no metadata exchange with
strangers).
"""

from __future__ import annotations

from btorrent.engine.extensions import extensionFeatures
from btorrent.engine.metadataserver import MetadataService
from btorrent.engine.pex import PeerExchange
from btorrent.peer.extended import UT_METADATA, UT_PEX

__all__ = ["installExtensions"]


def installExtensions(downloader, metainfo) -> None:
    """
    Give a torrent's downloader our extensions: the BEP 10 bit and ids in
    its L{Features} (kept: whatever else they offer), the ut_metadata
    server (which sends our extended handshake) and peer exchange; for a
    private torrent, none of them.

    @param downloader: the torrent's L{btorrent.engine.downloader.Downloader}.
    @param metainfo: its L{btorrent.codec.metainfo.Metainfo}.
    """
    private = bool(metainfo.private)
    downloader.features = extensionFeatures(downloader.features, private)
    if private:
        return
    downloader.extensions[UT_METADATA] = MetadataService(
        metainfo.infoBytes,
        lambda: downloader.listenPort,
        logFields=downloader.logFields,
    )
    downloader.extensions[UT_PEX] = PeerExchange(
        downloader.heartbeat,
        lambda: downloader.peers,
        downloader.addPeers,
        lambda: downloader.listenPort,
        logFields=downloader.logFields,
    )

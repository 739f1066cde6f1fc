"""
Peers from the DHT for the session's torrents: each running torrent that is
not private announces itself and looks up peers when it starts, then again
every L{ANNOUNCE_INTERVAL} (more often while it downloads with few peers,
or while it has no metadata yet); the peers found go to its connection
candidates.
"""

from __future__ import annotations

from typing import Dict

from twisted.logger import Logger

from btorrent.control.api import DOWNLOADING, SEEDING
from btorrent.util import logs

__all__ = ["ANNOUNCE_INTERVAL", "DHTPeers", "HUNGRY_INTERVAL", "MAX_LOOKUPS"]

#: Seconds between two announces of a torrent (BEP 5 peers expire after
#: 30 minutes).
ANNOUNCE_INTERVAL = 15 * 60.0

#: Seconds between two lookups of a torrent that downloads with fewer than
#: L{FEW_PEERS} peers, or waits for its metadata.
HUNGRY_INTERVAL = 60.0

#: Connected peers below which a downloading torrent looks up more often.
FEW_PEERS = 10

#: Lookups running at once.
MAX_LOOKUPS = 4


class DHTPeers:
    """
    Announces the session's torrents on the DHT and hands them the peers
    it finds.
    """

    log = Logger(observer=logs.observer)

    def __init__(self, session, dht) -> None:
        """
        @param session: the L{btorrent.daemon.session.Session} (its
            C{torrents}, C{port}, C{heartbeat}).
        @param dht: the L{btorrent.dht.protocol.DHTService}.
        """
        self.session = session
        self.dht = dht
        self._next: Dict[bytes, float] = {}
        self._running: Dict[bytes, object] = {}
        self.lookups = 0
        self.peersFound = 0

    def start(self) -> None:
        """
        Look things up on every heartbeat that finds something due.
        """
        self.session.heartbeat.subscribe(self, self.tick)

    def stop(self) -> None:
        """
        Stop looking things up.
        """
        self.session.heartbeat.unsubscribe(self)
        self._running.clear()

    def forget(self, infoHash: bytes) -> None:
        """
        A torrent left the session.
        """
        self._next.pop(infoHash, None)
        self._running.pop(infoHash, None)

    def tick(self, now: float) -> None:
        """
        Start the lookups that are due, at most L{MAX_LOOKUPS} at once.
        """
        for infoHash, torrent in list(self.session.torrents.items()):
            if len(self._running) >= MAX_LOOKUPS:
                return
            if infoHash in self._running or now < self._next.get(infoHash, 0.0):
                continue
            if torrent.state not in (DOWNLOADING, SEEDING):
                continue
            info = torrent.metainfo
            if info is not None and info.private:
                continue
            self._lookup(torrent, now)

    def _interval(self, torrent) -> float:
        if torrent.metainfo is None:
            return HUNGRY_INTERVAL
        downloader = torrent.downloader
        peers = len(downloader.peers) if downloader is not None else 0
        if torrent.state == DOWNLOADING and peers < FEW_PEERS:
            return HUNGRY_INTERVAL
        return ANNOUNCE_INTERVAL

    def _lookup(self, torrent, now: float) -> None:
        infoHash = torrent.infoHash
        self._next[infoHash] = now + self._interval(torrent)
        self.lookups += 1

        def found(address) -> None:
            if self.session.torrents.get(infoHash) is torrent:
                self.peersFound += 1
                torrent.addPeers([address])

        def done(lookup) -> None:
            self._running.pop(infoHash, None)

        self._running[infoHash] = self.dht.announce(
            infoHash, self.session.port, callback=found, done=done
        )

"""
L{ChokerService}: a L{btorrent.engine.choker.Choker} over a torrent's connected
peers, as a service.

Apart from L{btorrent.engine.choker} so that the policy stays free of
C{twisted.internet} (which L{twisted.application.service} imports).
"""

from __future__ import annotations

import random
from typing import Any, List, Optional

from twisted.application.service import Service
from twisted.logger import Logger

from btorrent.engine.choker import Choker
from btorrent.util import logs

__all__ = ["ChokerService"]

log = Logger(observer=logs.observer)


class ChokerService(Service):
    """
    A L{Choker} over a torrent's connected peers, running while the service
    runs.

    The torrent provides C{reactor}, C{downloader} (with C{peers}, the
    connected peers, and C{events}, whose C{peersChanged} event says a peer
    came, went, or changed its interest) and C{picker} (with C{complete}).
    """

    def __init__(
        self,
        torrent: Any,
        rng: Optional[random.Random] = None,
        slots: int = 4,
        interval: float = 10.0,
        optimisticInterval: float = 30.0,
        seedingOrder: str = "fastest",
        heartbeat=None,
    ) -> None:
        """
        @param torrent: the torrent.
        @param rng: the source of randomness (a new L{random.Random} by
            default).
        @param slots: regular unchoke slots.
        @param interval: seconds between full rechokes.
        @param optimisticInterval: seconds between optimistic rotations.
        @param seedingOrder: C{"fastest"} or C{"roundrobin"} (see L{Choker}).
        @param heartbeat: the session's heartbeat (see L{Choker}).
        """
        self.torrent = torrent
        self.choker = Choker(
            torrent.reactor,
            self._peers,
            self._seeding,
            rng or random.Random(),
            slots=slots,
            interval=interval,
            optimisticInterval=optimisticInterval,
            seedingOrder=seedingOrder,
            heartbeat=heartbeat,
        )

    def _peers(self) -> List[Any]:
        downloader = self.torrent.downloader
        return list(downloader.peers) if downloader is not None else []

    def _seeding(self) -> bool:
        return bool(self.torrent.picker.complete)

    def startService(self) -> None:
        """
        Start the choker and follow the downloader's peers.
        """
        super().startService()
        downloader = self.torrent.downloader
        if downloader is not None:
            downloader.events.listen("peersChanged", self.choker.peersChanged)
        self.choker.start()
        log.debug("choker started, {slots} slots", slots=self.choker.slots)

    def stopService(self) -> None:
        """
        Stop the choker.
        """
        super().stopService()
        self.choker.stop()
        downloader = self.torrent.downloader
        if downloader is not None:
            downloader.events.unlisten("peersChanged", self.choker.peersChanged)

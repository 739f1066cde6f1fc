"""
The session's side of the trackers.

L{Trackers} is a part of L{btorrent.daemon.session.Session}
(C{session.trackers}): it makes each torrent's announcer (over its
trackers, or a magnet link's while its metadata is fetched), and keeps the
UDP sockets that every UDP tracker shares (one per address family, bound
like our listening port).
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List

from twisted.internet import defer
from twisted.internet.error import CannotListenError

__all__ = ["Trackers"]


class Trackers:
    """
    Announcers and UDP tracker sockets of one session.
    """

    def __init__(self, session) -> None:
        """
        @param session: the L{btorrent.daemon.session.Session} (its
            C{reactor}, C{interface}, C{trackerOptions}).
        """
        self.session = session
        self._udpProtocols: Dict[bool, object] = {}

    def announcerOver(self, target, trackers):
        """
        An announcer of C{target} over C{trackers} (a magnet link's, while
        its metadata is fetched), or C{None} without any.
        """
        from btorrent.tracker.announcer import makeAnnouncer

        if not any(trackers):
            return None
        session = self.session
        return makeAnnouncer(
            target,
            trackers,
            session.reactor,
            udpProtocol=session.udpProtocol,
            ourAddresses=self.ourAddresses(),
            **session.trackerOptions,
        )

    def makeAnnouncer(self, torrent):
        """
        The announcer of C{torrent} over its trackers (C{None} without
        any); UDP trackers share one socket bound like our listening port.
        """
        return self.announcerOver(torrent, torrent.metainfo.trackers)

    def ourAddresses(self):
        """
        Our own IP addresses besides loopback, at which a tracker may list
        us: the interface we are bound to, if any.
        """
        try:
            return (str(ipaddress.ip_address(self.session.interface)),)
        except ValueError:
            return ()

    def udpProtocol(self, v6: bool = False):
        """
        See L{btorrent.daemon.session.Session.udpProtocol}.
        """
        from btorrent.tracker.announce import TrackerError
        from btorrent.tracker.udp import UDPTrackerProtocol

        protocol = self._udpProtocols.get(v6)
        if protocol is not None:
            return protocol
        family = "IPv6" if v6 else "IPv4"
        reactor, interface = self.session.reactor, self.session.interface
        if not interface:
            interface = "::" if v6 else ""
        else:
            try:
                version = ipaddress.ip_address(interface).version
            except ValueError:
                version = 4
            if version != (6 if v6 else 4):
                raise TrackerError(
                    f"cannot reach an {family} tracker from interface {interface}"
                )
        protocol = UDPTrackerProtocol(reactor)
        try:
            reactor.listenUDP(0, protocol, interface=interface)
        except CannotListenError as e:
            raise TrackerError(
                f"cannot open a UDP socket for {family} trackers: {e}"
            ) from e
        self._udpProtocols[v6] = protocol
        return protocol

    def stop(self) -> List[defer.Deferred]:
        """
        Close the UDP sockets.

        @return: a L{Deferred} per socket, firing once it is closed.
        """
        protocols, self._udpProtocols = self._udpProtocols, {}
        return [udp.stop() for udp in protocols.values()]

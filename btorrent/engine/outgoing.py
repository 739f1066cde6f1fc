"""
Outgoing peer connections: a client factory per dial, through MSE or in
plaintext as the torrent's encryption mode says, and one report of how the
attempt ended (handshaken or not, and whether plaintext is worth a try).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from btorrent.peer import encryption
from btorrent.peer.protocol import CONNECT_TIMEOUT

__all__ = ["Outgoing"]


def _makeClientFactory(factoryClass, context, clock, debug, heartbeat, onEnd):
    """
    Build an outgoing peer factory that tells C{onEnd(connected)} when its
    connection attempt ends, connected or not.
    """

    class _Outgoing(factoryClass):
        def clientConnectionFailed(self, connector, reason):
            onEnd(False)

        def clientConnectionLost(self, connector, reason):
            onEnd(True)

    factory = _Outgoing(context, clock)
    factory.debug = debug
    factory.heartbeat = heartbeat
    return factory


class Outgoing:
    """
    Dials peers for one torrent.

    @ivar bindAddress: the local address outgoing connections are made
        from, or C{None} (any).
    """

    def __init__(
        self,
        clock,
        connector,
        runInThread,
        heartbeat,
        debug: bool = False,
        bindAddress: Optional[str] = None,
    ) -> None:
        """
        @param clock: an C{IReactorTime}.
        @param connector: an C{IReactorTCP}.
        @param runInThread: C{runInThread(f, *args) -> Deferred}, for RC4
            off the reactor thread.
        @param heartbeat: the L{Heartbeat} the connections' deadlines run on.
        @param debug: log every peer message.
        @param bindAddress: see L{bindAddress}.
        """
        self.clock = clock
        self.connector = connector
        self.runInThread = runInThread
        self.heartbeat = heartbeat
        self.debug = debug
        self.bindAddress = bindAddress or None

    def dial(
        self,
        address: Tuple[str, int],
        context: Any,
        factoryClass: type,
        mode: str,
        onEnd: Callable[..., None],
        plaintext: bool = False,
    ):
        """
        Connect to C{address} (through MSE unless C{plaintext} or C{mode}
        says otherwise).

        @param context: the C{PeerContext} of the connection.
        @param factoryClass: the outgoing factory class.
        @param mode: the torrent's encryption mode
            (L{btorrent.peer.encryption.MODES}).
        @param onEnd: called once when the attempt ends:
            C{onEnd(handshaken)}, or C{onEnd(False, retryPlaintext=True)}
            when its MSE handshake failed and C{mode} falls back to
            plaintext.
        @return: the connector.
        """
        host, port = address
        handshaken = []
        provide = None if plaintext else encryption.outgoingProvide(mode)

        def ended(connected: bool) -> None:
            if (
                not handshaken
                and provide is not None
                and encryption.fallsBackToPlaintext(mode)
                and getattr(factory, "mseFailed", False)
            ):
                onEnd(False, retryPlaintext=True)
            else:
                onEnd(connected and bool(handshaken))

        factory = _makeClientFactory(
            factoryClass, context, self.clock, self.debug, self.heartbeat, ended
        )
        factory.address = factory.outgoingAddress = address
        factory.handshaken = handshaken
        factory.mseProvide = provide
        factory.mseRunInThread = self.runInThread
        kwargs = {}
        if self.bindAddress is not None:
            kwargs["bindAddress"] = (self.bindAddress, 0)
        return self.connector.connectTCP(
            host, port, factory, timeout=CONNECT_TIMEOUT, **kwargs
        )

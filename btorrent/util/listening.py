"""
Ports a composition root listens on itself, before twistd starts the
application: a port that cannot be had is one line and a non-zero exit,
not a traceback from inside twistd.
"""

from __future__ import annotations

from typing import Callable

from twisted.application import service
from twisted.internet.error import CannotListenError

__all__ = ["ListeningPort", "listenOrExit"]


class ListeningPort(service.Service):
    """
    A port already listening, closed when the service stops.

    @ivar port: the L{twisted.internet.interfaces.IListeningPort}.
    """

    def __init__(self, port) -> None:
        self.port = port

    def stopService(self):
        """
        Stop listening.
        """
        super().stopService()
        return self.port.stopListening()


def listenOrExit(listen: Callable[[], object], what: str):
    """
    Call C{listen()}; if the port cannot be had, exit with one line.

    @param what: names the program and the port, for the line:
        C{"btorrent: cannot listen on TCP port 9091 of 127.0.0.1"}.
    @raise SystemExit: with the line (Python prints it to standard error
        and exits with status 1).
    """
    try:
        return listen()
    except CannotListenError as e:
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise SystemExit(f"{what}: {reason}") from None

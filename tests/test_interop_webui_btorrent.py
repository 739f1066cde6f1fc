"""
The browser tests of L{tests.test_interop_webui}, against btorrent's own
daemon (a real C{twistd -n btorrent}): its page at C{/}, and
Transmission's web client (Debian's C{transmission-common}, unchanged) at
C{/transmission/web/} on the same port.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.daemonproc import DaemonProcess
from tests.test_interop_webui import (
    TRANSMISSION_WEB,
    ServerUnderTest,
    TransmissionWebClientTests,
    WebPageTests,
)


def startDaemon(test, directory: str, path: str) -> ServerUnderTest:
    """
    Start a btorrent daemon with its files under C{directory}, serving
    Transmission's web client from Debian's copy.

    @param path: the page's path on the RPC port (C{/} or
        C{/transmission/web/}).
    """
    daemon = DaemonProcess(
        test,
        directory,
        "--web-home",
        TRANSMISSION_WEB,
        downloadDir=None,
    )
    return ServerUnderTest(
        pageURL=f"http://127.0.0.1:{daemon.rpcPort}{path}",
        rpc=daemon.rpc,
        peerPort=daemon.peerPort,
        stop=daemon.stop,
    )


class BtorrentWebPageTests(WebPageTests, SynchronousTestCase):
    """
    btorrent's page, served by btorrent's daemon at C{/}.
    """

    def startServer(self, directory: str) -> ServerUnderTest:
        return startDaemon(self, directory, "/")


class BtorrentTransmissionWebClientTests(
    TransmissionWebClientTests, SynchronousTestCase
):
    """
    Transmission's web client, served by btorrent's daemon at
    C{/transmission/web/}, against btorrent's RPC.
    """

    def startServer(self, directory: str) -> ServerUnderTest:
        return startDaemon(self, directory, "/transmission/web/")

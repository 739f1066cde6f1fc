"""
Tests for L{btorrent.daemon.session} (one port, one peer id, torrents routed by
info-hash, the thread pool) and L{btorrent.daemon.tap.makeService}.
"""

from __future__ import annotations

import os
import signal
import threading

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from btorrent import PEER_ID_PREFIX
from btorrent.daemon.session import PORT_TRIES, Session, makePeerId
from btorrent.daemon.tap import Options, ReannounceOnSignal, makeService
from btorrent.interfaces import IPeerRouter
from btorrent.peer.protocol import PeerContext
from btorrent.tracker.announce import TrackerError
from btorrent.util import logs
from tests.builders import buildTorrent
from tests.fakes import SyncReactor, syncRunner


class Reactor(SyncReactor):
    """
    A memory reactor whose ports in C{taken} cannot be listened on, with
    UDP ports.
    """

    def __init__(self, taken=()):
        super().__init__()
        self.taken = set(taken)
        self.udpPorts = []

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port in self.taken:
            raise CannotListenError(interface, port, OSError("in use"))
        return super().listenTCP(port, factory, backlog, interface)

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        udp = FakeUDPPort(IPv4Address("UDP", interface or "0.0.0.0", 40000), protocol)
        udp.interface = interface
        self.udpPorts.append(udp)
        protocol.makeConnection(udp)
        return udp


class FakeUDPPort:
    """
    Enough of a UDP port for a protocol to start and stop on.
    """

    def __init__(self, address, protocol):
        self.address = address
        self.protocol = protocol

    def getHost(self):
        return self.address

    def write(self, data, addr):
        pass

    def stopListening(self):
        self.protocol.doStop()
        self.protocol.transport = None


def makeInfo(base, name="data"):
    """
    A directory C{base/name} with one file, its torrent and its
    C{.torrent} file.

    @return: the L{metainfo.Metainfo} and the C{.torrent} file's path.
    """
    built = buildTorrent(os.path.join(base, name), [("f.bin", 50000)])
    return built.metainfo, built.writeTorrent()


def noParts(torrent):
    return None


class SessionTests(SynchronousTestCase):
    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def session(self, reactor=None, port=6881, **kwargs):
        session = Session(
            reactor or Reactor(),
            port=port,
            interface="127.0.0.1",
            stateDir=os.path.join(self.base, "state"),
            runInThread=syncRunner,
            **kwargs,
        )
        self.addCleanup(lambda: session.running and session.stopService())
        return session

    def test_peerId(self):
        """
        Our client prefix and 12 random bytes, fresh each time.
        """
        a, b = makePeerId(), makePeerId()
        self.assertEqual(len(a), 20)
        self.assertTrue(a.startswith(PEER_ID_PREFIX))
        self.assertNotEqual(a, b)
        self.assertTrue(self.session().peerId.startswith(PEER_ID_PREFIX))

    def test_interface(self):
        verifyObject(IPeerRouter, self.session())

    def test_listen(self):
        """
        One listening port, on the interface asked for, for every torrent.
        """
        reactor = Reactor()
        session = self.session(reactor)
        session.startService()
        self.assertEqual(len(reactor.tcpServers), 1)
        port, factory, _, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (6881, "127.0.0.1"))
        self.assertIs(factory.router, session)
        self.assertEqual(session.port, 6881)

    def test_portTaken(self):
        """
        A taken port: the next ones are tried, and the one used is logged.
        """
        reactor = Reactor(taken={6881, 6882})
        session = self.session(reactor)
        info, _ = makeInfo(self.base)
        torrent = session.addTorrent(
            info, self.base, announcerFactory=noParts, chokerFactory=noParts
        )
        session.startService()
        self.assertEqual(session.port, 6883)
        self.assertEqual(torrent.port, 6883)
        self.assertEqual(torrent.downloader.listenPort, 6883)
        self.assertTrue(
            [e for e in self.events if e.get("port") == 6883 and e.get("requested")]
        )

    def test_allPortsTaken(self):
        reactor = Reactor(taken=set(range(6881, 6881 + PORT_TRIES + 1)))
        session = self.session(reactor)
        self.assertRaises(CannotListenError, session.startService)
        session.threadPool.stop()

    def test_portZero(self):
        """
        Port 0 is any free port, and is not retried.
        """
        reactor = Reactor()
        session = self.session(reactor, port=0)
        session.startService()
        self.assertEqual([s[0] for s in reactor.tcpServers], [0])

    def test_route(self):
        """
        An incoming handshake for a running torrent gets its context; any
        other info-hash gets C{None}.
        """
        session = self.session()
        info, _ = makeInfo(self.base)
        torrent = session.addTorrent(
            info, self.base, announcerFactory=noParts, chokerFactory=noParts
        )
        self.assertIsNone(session.ownerFor(info.infoHash))
        session.startService()
        context = session.ownerFor(info.infoHash)
        self.assertIsInstance(context, PeerContext)
        self.assertEqual(context.infoHash, info.infoHash)
        self.assertEqual(context.peerId, session.peerId)
        self.assertEqual(context.pieceCount, info.pieceCount)
        self.assertIs(context.owner, torrent.downloader)
        self.assertIsNone(session.ownerFor(b"x" * 20))
        self.successResultOf(session.stopService())
        self.assertIsNone(session.ownerFor(info.infoHash))

    def test_oneTorrentPerInfoHash(self):
        session = self.session()
        info, _ = makeInfo(self.base)
        session.addTorrent(info, self.base)
        self.assertRaises(ValueError, session.addTorrent, info, self.base)

    def test_threadPoolLifecycle(self):
        """
        The thread pool runs while the session runs.
        """
        reactor = Reactor()
        session = self.session(reactor)
        session.startService()
        self.assertTrue(session.threadPool.started)
        self.successResultOf(session.stopService())
        self.assertFalse(session.threadPool.started)
        self.assertEqual(reactor.tcpServers[0][1].router, session)

    def test_announcerOverTrackers(self):
        """
        A torrent with trackers gets an announcer over them, UDP trackers on
        the session's own socket, bound to its interface.
        """
        reactor = Reactor()
        session = self.session(
            reactor, trackerOptions={"udpRetransmitBase": 3.0, "udpMaxRetries": 5}
        )
        info = buildTorrent(
            os.path.join(self.base, "u"),
            [("f", 1000)],
            None,
            trackers=[["udp://127.0.0.1:1/announce"], ["http://127.0.0.1:2/announce"]],
        ).metainfo
        torrent = session.addTorrent(info, self.base)
        session.startService()
        urls = [[c.url for c in tier] for tier in torrent.announcer.tiers]
        self.assertEqual(
            urls, [["udp://127.0.0.1:1/announce"], ["http://127.0.0.1:2/announce"]]
        )
        # The client asks the session for the socket of the tracker's
        # address family when it announces: the start announce opened it.
        self.assertEqual(torrent.announcer.tiers[0][0]._protocol, session.udpProtocol)
        self.assertEqual(len(reactor.udpPorts), 1)
        udp = session.udpProtocol()
        self.assertEqual(udp.transport.getHost().host, "127.0.0.1")
        self.assertEqual(torrent.announcer.ourAddresses, {"127.0.0.1"})
        client = torrent.announcer.tiers[0][0]
        self.assertEqual((client.retransmitBase, client.maxRetries), (3.0, 5))
        self.successResultOf(session.stopService())
        self.assertIsNone(udp.transport)

    def test_udpSocketPerFamily(self):
        """
        One UDP tracker socket per address family, bound to the interface;
        a family the interface cannot reach is a L{TrackerError}, not a
        socket that would refuse every datagram.
        """
        reactor = Reactor()
        session = Session(reactor, port=0, runInThread=syncRunner)
        v4 = session.udpProtocol(False)
        v6 = session.udpProtocol(True)
        self.assertIsNot(v4, v6)
        self.assertIs(session.udpProtocol(False), v4)
        self.assertEqual([p.interface for p in reactor.udpPorts], ["", "::"])
        bound = Session(Reactor(), port=0, interface="127.0.0.1")
        e = self.assertRaises(TrackerError, bound.udpProtocol, True)
        self.assertIn("IPv6 tracker from interface 127.0.0.1", str(e))
        bound6 = Session(Reactor(), port=0, interface="::1")
        self.assertRaises(TrackerError, bound6.udpProtocol, False)
        self.assertIsNotNone(bound6.udpProtocol(True))


class MakeServiceTests(SynchronousTestCase):
    def test_debugLinesOnlyWithDebug(self):
        """
        The daemon's btorrent lines are info and above; with C{--debug},
        debug lines too.
        """
        self.addCleanup(logs.setLevel, LogLevel.debug)
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        log = Logger(namespace="btorrent.test", observer=logs.observer)
        base = os.path.abspath(self.mktemp())
        for debug in ([], ["--debug"]):
            options = Options()
            options.parseOptions(
                ["-d", base, "--state-dir", os.path.join(base, "state")]
                + ["--rpc-port", "0", "--no-dht"]
                + debug
            )
            makeService(options)
            del seen[:]
            log.debug("a debug line")
            log.info("an info line")
            self.assertEqual(
                [e["log_format"] for e in seen],
                (["a debug line"] if debug else []) + ["an info line"],
            )

    def test_makeService(self):
        """
        C{twistd btorrent} options become a Session with one torrent per
        C{--torrent}, the port, state directory and limits asked for.
        """
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        first, firstPath = makeInfo(base, "one")
        second, secondPath = makeInfo(base, "two")
        options = Options()
        options.parseOptions(
            [
                "--torrent",
                firstPath,
                "--torrent",
                secondPath,
                "--download-dir",
                base,
                "--port",
                "7000",
                "--state-dir",
                os.path.join(base, "state"),
                "--max-peers",
                "7",
                "--upload-slots",
                "6",
                "--resume-interval",
                "5",
                "--piece-order",
                "rarest",
                "--udp-tracker-timeout",
                "2.5",
                "--udp-tracker-retries",
                "8",
                "--rpc-port",
                "0",
                "--no-dht",
            ]
        )
        # makeService sets the level of btorrent's lines for the process.
        self.addCleanup(logs.setLevel, LogLevel.debug)
        session = makeService(options).session
        self.assertEqual(
            session.trackerOptions, {"udpRetransmitBase": 2.5, "udpMaxRetries": 8}
        )
        self.assertIsInstance(session, Session)
        self.assertEqual(session.requestedPort, 7000)
        self.assertEqual(session.stateDir, os.path.join(base, "state"))
        self.assertEqual(set(session.torrents), {first.infoHash, second.infoHash})
        torrent = session.torrents[first.infoHash]
        self.assertEqual(torrent.maxPeers, 7)
        self.assertEqual(torrent.uploadSlots, 6)
        self.assertEqual(torrent.resumeInterval, 5.0)
        self.assertEqual(torrent.picker.order, "rarest")
        self.assertEqual(torrent.storage.downloadDir, base)


class ThreadTests(TestCase):
    """
    Disk work and hashing leave the reactor thread.
    """

    @defer.inlineCallbacks
    def test_hashingOffTheReactorThread(self):
        """
        The session's default runner runs work in its thread pool, and a
        torrent's downloader hashes and writes pieces through it.
        """
        from twisted.internet import reactor

        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        info, _ = makeInfo(base)
        session = Session(
            reactor, port=0, interface="127.0.0.1", stateDir=None, maxThreads=2
        )
        torrent = session.addTorrent(
            info, base, announcerFactory=noParts, chokerFactory=noParts
        )
        session.startService()
        self.addCleanup(session.stopService)
        yield torrent.ready
        self.assertIs(torrent.downloader.runInThread, session.runInThread)
        seen = []
        assembler = torrent.downloader.assembler
        real = assembler.verifyAndWrite

        def verifyAndWrite(work):
            seen.append(threading.get_ident())
            return real(work)

        assembler.verifyAndWrite = verifyAndWrite
        ident = yield session.runInThread(threading.get_ident)
        self.assertNotEqual(ident, threading.get_ident())
        # Complete one piece as if a peer had sent it.
        from btorrent.engine.assembler import _Piece

        piece = _Piece(bytearray(info.pieceSize(0)))
        with open(os.path.join(base, "data", "f.bin"), "rb") as f:
            piece.buffer[:] = f.read(info.pieceSize(0))
        piece.senders = ["x"] * len(piece.senders)
        done = defer.Deferred()
        torrent.downloader.events.listen("pieceVerified", done.callback)
        assembler._pieceComplete(0, piece)
        index = yield done
        self.assertEqual(index, 0)
        self.assertEqual(len(seen), 1)
        self.assertNotEqual(seen[0], threading.get_ident())


class ReannounceTests(SynchronousTestCase):
    """
    Asking every torrent to announce now, and C{SIGUSR1} doing it.
    """

    def test_reannounce(self):
        """
        Every running announcer is asked to announce now, ignoring the
        tracker's minimum interval.
        """

        class Announcer:
            running = True

            def __init__(self):
                self.asked = []

            def announceNow(self, force=False):
                self.asked.append(force)

        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        session = Session(Reactor(), port=0, runInThread=syncRunner)
        announcers = []
        for name in ("one", "two"):
            info, _ = makeInfo(base, name)
            torrent = session.addTorrent(info, base, chokerFactory=noParts)
            torrent.announcer = Announcer()
            announcers.append(torrent.announcer)
        announcers[1].running = False
        self.assertEqual(session.reannounce(), 1)
        self.assertEqual([a.asked for a in announcers], [[True], []])

    def test_signal(self):
        """
        While the service runs, C{SIGUSR1} calls the session's
        C{reannounce} from the reactor; stopping puts the previous handler
        back.
        """

        class FakeReactor:
            def __init__(self):
                self.calls = []

            def callFromThread(self, f, *args):
                self.calls.append(f)

        class FakeSession:
            def reannounce(self):
                pass

        session = FakeSession()
        reactor = FakeReactor()
        before = signal.getsignal(signal.SIGUSR1)
        service = ReannounceOnSignal(session, reactor)
        service.startService()
        self.addCleanup(signal.signal, signal.SIGUSR1, before)
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertEqual(reactor.calls, [session.reannounce])
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGUSR1), before)

    def test_makeServiceInstallsIt(self):
        """
        C{twistd btorrent}'s service has the signal service as a child.
        """
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        _, path = makeInfo(base)
        options = Options()
        options.parseOptions(
            [
                "--torrent",
                path,
                "--download-dir",
                base,
                "--state-dir",
                os.path.join(base, "state"),
                "--rpc-port",
                "0",
                "--no-dht",
            ]
        )
        # makeService sets the level of btorrent's lines for the process.
        self.addCleanup(logs.setLevel, LogLevel.debug)
        daemon = makeService(options)
        children = [c for c in daemon if isinstance(c, ReannounceOnSignal)]
        self.assertEqual(len(children), 1)
        self.assertIs(children[0].session, daemon.session)

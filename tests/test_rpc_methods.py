"""
The Transmission RPC methods (L{btorrent.control.rpcmethods}) against the
fake session: every method, the JSON type of every field, and wrong
arguments answered with a clear result while nothing changes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from btorrent.codec import metainfo
from btorrent.control.access import SessionIdSource
from btorrent.control.api import (
    DOWNLOADING,
    SEEDING,
    STOPPED,
    AddOptions,
    ControlError,
    ISessionControl,
    ITorrentControl,
    TorrentOptions,
)
from btorrent.control.rpc import _jsonBytes
from btorrent.control.rpcfields import (
    SESSION_FIELDS,
    TORRENT_FIELDS,
    scrapeURL,
    transmissionVersion,
)
from btorrent.control.rpcmethods import RPCMethods
from tests.builders import buildTorrent
from tests.fakesession import exampleSession

#: The JSON type of every torrent-get field.
TORRENT_TYPES = {
    int: """activityDate addedDate bandwidthPriority corruptEver dateCreated
        desiredAvailable doneDate downloadedEver downloadLimit editDate error
        eta etaIdle fileCount file-count haveUnchecked haveValid id
        leftUntilDone manualAnnounceTime maxConnectedPeers peer-limit
        peersConnected peersGettingFromUs peersSendingToUs pieceCount
        pieceSize queuePosition rateDownload rateUpload secondsDownloading
        secondsSeeding seedIdleLimit seedIdleMode seedRatioMode sizeWhenDone
        startDate status totalSize uploadedEver uploadLimit
        webseedsSendingToUs""",
    float: """metadataPercentComplete percentDone recheckProgress
        seedRatioLimit uploadRatio""",
    bool: """downloadLimited honorsSessionLimits isFinished isPrivate isStalled
        uploadLimited sequential_download""",
    str: """comment creator downloadDir errorString hashString magnetLink name
        pieces torrentFile""",
    list: """files fileStats labels peers priorities trackers trackerStats
        wanted webseeds""",
    dict: "peersFrom",
}

#: The fields C{transmission-remote -l} needs, Sonarr's, and some of the
#: web client's.
LIST_FIELDS = """error errorString eta id isFinished leftUntilDone name
    peersGettingFromUs peersSendingToUs rateDownload rateUpload sizeWhenDone
    status uploadRatio""".split()
SONARR_FIELDS = """id hashString name downloadDir totalSize leftUntilDone
    isFinished eta status secondsDownloading secondsSeeding errorString
    uploadedEver downloadedEver seedRatioLimit seedRatioMode seedIdleLimit
    seedIdleMode fileCount labels""".split()


def typeOf(name: str) -> type:
    for kind, names in TORRENT_TYPES.items():
        if name in names.split():
            return kind
    raise KeyError(name)


def checkType(case: SynchronousTestCase, name: str, value: object) -> None:
    """
    C{value} is of C{name}'s JSON type (an integer is never a float or a
    bool, a real is a float).
    """
    kind = typeOf(name)
    case.assertIs(type(value), kind, f"{name}={value!r}")


class Harness:
    """
    RPCMethods on an example fake session, with a clock.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.case = case
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.dir = os.path.abspath(case.mktemp())
        os.makedirs(self.dir)
        self.session = exampleSession(self.clock.seconds, self.dir)
        self.sessionIds = SessionIdSource(self.clock.seconds)
        self.fetched = []
        self.urlBodies = {}
        self.methods = RPCMethods(
            self.session,
            self.clock,
            self.sessionIds,
            transmissionVersion("0.1.0"),
            self.fetch,
            configDir="/var/lib/btorrent",
        )

    def fetch(self, url, cookies):
        self.fetched.append((url, cookies))
        if url in self.urlBodies:
            return succeed(self.urlBodies[url])
        return fail(ControlError("gotMetadataFromURL: http error 404: Not Found"))

    def call(self, method, arguments=None, **extra):
        request = {"method": method}
        if arguments is not None:
            request["arguments"] = arguments
        request.update(extra)
        response = self.case.successResultOf(self.methods.handle(request))
        # Every answer encodes as strict JSON.
        json.loads(_jsonBytes(response))
        return response

    def ok(self, method, arguments=None):
        response = self.call(method, arguments)
        self.case.assertEqual(response["result"], "success", response)
        return response["arguments"]

    def refused(self, method, arguments, text):
        """
        The call fails with C{text} in its result, and the session saw no
        change.
        """
        before = self.snapshot()
        calls = len(self.session.calls)
        response = self.call(method, arguments)
        self.case.assertNotEqual(response["result"], "success")
        self.case.assertIn(text, response["result"])
        self.case.assertNotIn("Traceback", response["result"])
        self.case.assertEqual(self.snapshot(), before)
        changing = [
            c
            for c in self.session.calls[calls:]
            if c[0] not in ("freeSpace",) and not (len(c) > 1 and c[1] == "status")
        ]
        self.case.assertEqual(changing, [])
        return response

    def snapshot(self):
        return (
            dataclasses.asdict(self.session.settings),
            [
                (
                    t.id,
                    t.state,
                    t.labels,
                    t.queuePosition,
                    t.downloadDir,
                    t.options,
                    [dataclasses.astuple(f) for f in t.files],
                )
                for t in self.session.torrents()
            ],
        )


def makeTorrentFile(case: SynchronousTestCase, name: str = "payload.bin") -> tuple:
    """
    A real .torrent (and its bytes) for a small file under a temp dir.
    """
    built = buildTorrent(case.mktemp(), [(name, 50_000)], None, single=True)
    return built.writeTorrent(), built.torrentBytes


class FakeSessionTests(SynchronousTestCase):
    """
    The fake implements the session API.
    """

    def test_interfaces(self) -> None:
        session = exampleSession(Clock().seconds)
        self.assertTrue(verifyObject(ISessionControl, session))
        for torrent in session.torrents():
            self.assertTrue(verifyObject(ITorrentControl, torrent))


class EnvelopeTests(SynchronousTestCase):
    """
    The request and response objects.
    """

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_tag(self) -> None:
        """
        An integer or string tag is echoed; none, or one of another type,
        is left out.
        """
        self.assertEqual(self.h.call("session-stats", tag=39693)["tag"], 39693)
        self.assertEqual(self.h.call("session-stats", tag="t1")["tag"], "t1")
        self.assertNotIn("tag", self.h.call("session-stats"))
        self.assertNotIn("tag", self.h.call("session-stats", tag={"x": 1}))
        self.assertNotIn("tag", self.h.call("session-stats", tag=True))
        self.assertEqual(self.h.call("nope", tag=5)["tag"], 5)

    def test_badRequests(self) -> None:
        """
        No method, an unknown method, arguments that are not an object, a
        request that is not an object: each a clear result.
        """
        cases = [
            ({}, "no method name"),
            ({"method": 5}, "no method name"),
            ({"method": "torrent-explode"}, "method name not recognized"),
            (
                {"method": "torrent-get", "arguments": [1]},
                '"arguments" must be an object',
            ),
        ]
        for request, text in cases:
            response = self.successResultOf(self.h.methods.handle(request))
            self.assertEqual(
                response["result"], text if "must" not in text else response["result"]
            )
            self.assertIn(text, response["result"])
            self.assertEqual(response["arguments"], {})
        for request in [[], "x", 5, None]:
            response = self.successResultOf(self.h.methods.handle(request))
            self.assertEqual(response["result"], "invalid request: not a JSON object")

    def test_nullArguments(self) -> None:
        """
        C{"arguments": null} is as if absent.
        """
        request = {"method": "session-stats", "arguments": None}
        response = self.successResultOf(self.h.methods.handle(request))
        self.assertEqual(response["result"], "success")

    def test_internalError(self) -> None:
        """
        A bug in the session is logged and answered with a short line, no
        traceback.
        """

        def broken():
            raise RuntimeError("boom")

        self.h.session.torrents = broken
        response = self.h.call("torrent-get", {"fields": ["id"]})
        self.assertEqual(response["result"], "internal error in torrent-get")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_methods(self) -> None:
        """
        The methods served: Transmission 3.00's.
        """
        self.assertEqual(
            self.h.methods.methodNames,
            sorted("""blocklist-update free-space port-test queue-move-bottom
                queue-move-down queue-move-top queue-move-up session-close
                session-get session-set session-stats torrent-add torrent-get
                torrent-reannounce torrent-remove torrent-rename-path
                torrent-set torrent-set-location torrent-start
                torrent-start-now torrent-stop torrent-verify""".split()),
        )


class TorrentGetTests(SynchronousTestCase):
    """
    C{torrent-get}.
    """

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_typeTableComplete(self) -> None:
        """
        The type table above names exactly the fields served.
        """
        named = set()
        for names in TORRENT_TYPES.values():
            named.update(names.split())
        self.assertEqual(named, set(TORRENT_FIELDS))

    def test_allFieldsTyped(self) -> None:
        """
        Every field of every torrent has its JSON type; integers stay
        integers in the encoded text (the fake's ETA is the float 12.5).
        """
        torrents = self.h.ok("torrent-get", {"fields": sorted(TORRENT_FIELDS)})[
            "torrents"
        ]
        self.assertEqual(len(torrents), 2)
        for torrent in torrents:
            self.assertEqual(set(torrent), set(TORRENT_FIELDS))
            for name, value in torrent.items():
                checkType(self, name, value)
        downloading = torrents[1]
        self.assertEqual(downloading["eta"], 12)
        text = _jsonBytes({"torrents": torrents}).decode()
        self.assertIn('"eta":12,', text)
        self.assertIn('"eta":-1,', text)

    def test_values(self) -> None:
        """
        The values: status numbers, sizes, rates in bytes/s, limits in
        kB/s, ratio, hash in lower-case hex, pieces as a base64 bitfield,
        files, peers and trackers.
        """
        done, downloading = self.h.ok(
            "torrent-get", {"fields": sorted(TORRENT_FIELDS)}
        )["torrents"]
        self.assertEqual(done["id"], 1)
        self.assertEqual(done["status"], SEEDING)
        self.assertEqual(downloading["status"], DOWNLOADING)
        self.assertEqual(done["percentDone"], 1.0)
        self.assertEqual(downloading["percentDone"], 0.4)
        self.assertEqual(downloading["leftUntilDone"], 600_000)
        self.assertEqual(downloading["rateDownload"], 48_000)
        self.assertEqual(done["rateUpload"], 12_345)
        self.assertEqual(done["downloadLimit"], 100)
        self.assertEqual(done["uploadRatio"], 1.5)
        self.assertEqual(done["eta"], -1)
        self.assertEqual(done["hashString"], self.h.session.torrent(1).infoHash.hex())
        self.assertEqual(done["totalSize"], 500_000)
        self.assertEqual(done["pieceCount"], 31)
        bits = base64.b64decode(done["pieces"])
        self.assertEqual(bits, b"\xff\xff\xff\xfe")
        self.assertEqual(
            done["files"],
            [
                {
                    "bytesCompleted": 300_000,
                    "length": 300_000,
                    "name": "Complete Album/a.flac",
                },
                {
                    "bytesCompleted": 200_000,
                    "length": 200_000,
                    "name": "Complete Album/b.flac",
                },
            ],
        )
        self.assertEqual(
            done["fileStats"][0],
            {"bytesCompleted": 300_000, "wanted": True, "priority": 0},
        )
        self.assertEqual(done["wanted"], [1, 1])
        self.assertEqual(done["priorities"], [0, 0])
        self.assertEqual(done["fileCount"], 2)
        self.assertEqual(done["peers"][0]["address"], "127.0.0.1")
        self.assertEqual(done["peers"][0]["rateToPeer"], 12_345)
        self.assertIs(done["peers"][0]["isUTP"], False)
        self.assertEqual(len(done["peers"][0]), 16)
        self.assertEqual(
            done["trackers"],
            [
                {
                    "announce": "http://127.0.0.1:6969/announce",
                    "id": 0,
                    "scrape": "http://127.0.0.1:6969/scrape",
                    "tier": 0,
                }
            ],
        )
        self.assertEqual(len(done["trackerStats"][0]), 26)
        self.assertEqual(done["trackerStats"][0]["host"], "127.0.0.1:6969")
        self.assertEqual(done["magnetLink"][:20], "magnet:?xt=urn:btih:")
        self.assertEqual(
            set(done["peersFrom"]),
            {
                "fromCache",
                "fromDht",
                "fromIncoming",
                "fromLpd",
                "fromLtep",
                "fromPex",
                "fromTracker",
            },
        )

    def test_listAndSonarrFields(self) -> None:
        """
        Exactly the fields asked for come back.
        """
        for fields in (LIST_FIELDS, SONARR_FIELDS):
            torrents = self.h.ok("torrent-get", {"fields": fields})["torrents"]
            for torrent in torrents:
                self.assertEqual(sorted(torrent), sorted(fields))

    def test_unknownFieldsSkipped(self) -> None:
        """
        Unknown names and non-strings in C{fields} are skipped, as
        Transmission does.
        """
        torrents = self.h.ok("torrent-get", {"fields": ["id", "bogus", 5, "id"]})[
            "torrents"
        ]
        self.assertEqual(torrents, [{"id": 1}, {"id": 2}])

    def test_fieldsRequired(self) -> None:
        for arguments in [{}, {"fields": "id"}, {"fields": None}]:
            self.h.refused("torrent-get", arguments, "no fields specified")

    def test_ids(self) -> None:
        """
        C{ids}: absent for all, an integer, a list of integers and hashes,
        one hash (any case); unknown ids are skipped.
        """
        hash2 = self.h.session.torrent(2).infoHash.hex()

        def ids(value):
            arguments = {"fields": ["id"]}
            if value is not None:
                arguments["ids"] = value
            return [t["id"] for t in self.h.ok("torrent-get", arguments)["torrents"]]

        self.assertEqual(ids(None), [1, 2])
        self.assertEqual(ids(2), [2])
        self.assertEqual(ids(2.0), [2])
        self.assertEqual(ids([2, 1]), [2, 1])
        self.assertEqual(ids([hash2, 1, 2]), [2, 1])
        self.assertEqual(ids(hash2.upper()), [2])
        self.assertEqual(ids([]), [])
        self.assertEqual(ids(99), [])
        self.assertEqual(ids(["0" * 40]), [])

    def test_badIds(self) -> None:
        """
        Wrong C{ids} types are refused, never taken for "all".
        """
        for value in [{}, None, True, [{}], [[1]], "abc", ["12ab"], 1.5, [None]]:
            self.h.refused("torrent-get", {"fields": ["id"], "ids": value}, "id")

    def test_recentlyActive(self) -> None:
        """
        C{"recently-active"}: torrents active in the last minute, and the
        ids of those removed in it.
        """
        self.h.clock.advance(120)
        self.h.session.torrent(2).reannounce()
        self.h.ok("torrent-remove", {"ids": [1]})
        answer = self.h.ok("torrent-get", {"fields": ["id"], "ids": "recently-active"})
        self.assertEqual(answer, {"torrents": [{"id": 2}], "removed": [1]})
        self.h.clock.advance(61)
        answer = self.h.ok("torrent-get", {"fields": ["id"], "ids": "recently-active"})
        self.assertEqual(answer, {"torrents": [], "removed": []})
        self.assertNotIn("removed", self.h.ok("torrent-get", {"fields": ["id"]}))

    def test_table(self) -> None:
        """
        C{"format": "table"}: the names, then one list per torrent.
        """
        answer = self.h.ok("torrent-get", {"fields": ["id", "name"], "format": "table"})
        self.assertEqual(
            answer["torrents"],
            [["id", "name"], [1, "Complete Album"], [2, "Big Download.iso"]],
        )
        self.h.refused("torrent-get", {"fields": ["id"], "format": "csv"}, '"format"')

    def test_scrapeURL(self) -> None:
        self.assertEqual(scrapeURL("http://t/announce"), "http://t/scrape")
        self.assertEqual(
            scrapeURL("http://t/x/announce.php?k=1"), "http://t/x/scrape.php?k=1"
        )
        self.assertEqual(scrapeURL("udp://t:80"), "udp://t:80")
        self.assertEqual(scrapeURL("http://t/a"), "")


class TorrentActionTests(SynchronousTestCase):
    """
    Start, stop, verify, reannounce, remove, queue moves.
    """

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_startStop(self) -> None:
        s = self.h.session
        self.h.ok("torrent-stop", {"ids": [1]})
        self.assertEqual(s.torrent(1).state, STOPPED)
        self.h.ok("torrent-start", {"ids": 1})
        self.assertEqual(s.torrent(1).state, SEEDING)
        self.h.ok("torrent-start-now", {"ids": [s.torrent(2).infoHash.hex()]})
        self.assertEqual(
            [c for c in s.calls if c[1] in ("start", "stop")],
            [(1, "stop"), (1, "start", False), (2, "start", True)],
        )

    def test_startInQueueOrder(self) -> None:
        """
        C{torrent-start} starts torrents in queue order (Transmission's).
        """
        s = self.h.session
        s.torrent(1).queuePosition, s.torrent(2).queuePosition = 1, 0
        self.h.ok("torrent-start", {})
        self.assertEqual([c[0] for c in s.calls if c[1] == "start"], [2, 1])

    def test_verifyReannounce(self) -> None:
        self.h.ok("torrent-verify", {"ids": [2]})
        self.h.ok("torrent-reannounce", {})
        self.assertEqual(
            [c[:2] for c in self.h.session.calls],
            [(2, "verify"), (1, "reannounce"), (2, "reannounce")],
        )

    def test_remove(self) -> None:
        self.h.ok("torrent-remove", {"ids": [1]})
        self.h.ok("torrent-remove", {"ids": 2, "delete-local-data": True})
        self.assertEqual(
            self.h.session.calls,
            [("removeTorrent", 1, False), ("removeTorrent", 2, True)],
        )
        self.assertEqual(self.h.session.torrents(), [])

    def test_removeWithBadIds(self) -> None:
        """
        C{"ids": {}} (which Transmission takes for "all") removes nothing.
        """
        for value in [{}, None, [{}], "everything"]:
            self.h.refused(
                "torrent-remove", {"ids": value, "delete-local-data": True}, "id"
            )
        self.h.refused(
            "torrent-remove",
            {"ids": [1], "delete-local-data": "yes"},
            "delete-local-data",
        )
        self.assertEqual(len(self.h.session.torrents()), 2)

    def test_queueMoves(self) -> None:
        s = self.h.session
        self.h.ok("queue-move-bottom", {"ids": [1]})
        self.assertEqual(
            [s.torrent(1).queuePosition, s.torrent(2).queuePosition], [1, 0]
        )
        self.h.ok("queue-move-top", {"ids": [1]})
        self.h.ok("queue-move-down", {"ids": [1]})
        self.h.ok("queue-move-up", {"ids": [1]})
        self.assertEqual(
            [c[2] for c in s.calls if c[0] == "queueMove"],
            ["bottom", "top", "down", "up"],
        )
        self.h.refused("queue-move-top", {"ids": {}}, "ids")


class TorrentSetTests(SynchronousTestCase):
    """
    C{torrent-set}, C{torrent-set-location}, C{torrent-rename-path}.
    """

    def setUp(self) -> None:
        self.h = Harness(self)

    def options(self, id=1) -> TorrentOptions:
        return self.h.session.torrent(id).options

    def test_limits(self) -> None:
        """
        Limits arrive in kB/s (K = 1000) and reach the session in bytes/s.
        """
        self.h.ok(
            "torrent-set",
            {
                "ids": [1],
                "downloadLimit": 50,
                "downloadLimited": True,
                "uploadLimit": 60,
                "uploadLimited": 1,
                "honorsSessionLimits": False,
                "peer-limit": 20,
                "bandwidthPriority": 1,
                "queuePosition": 1,
            },
        )
        o = self.options()
        self.assertEqual((o.downloadLimit, o.downloadLimited), (50_000, True))
        self.assertEqual((o.uploadLimit, o.uploadLimited), (60_000, True))
        self.assertEqual(
            (o.honorsSessionLimits, o.peerLimit, o.bandwidthPriority), (False, 20, 1)
        )
        self.assertEqual(self.h.session.torrent(1).queuePosition, 1)
        self.assertEqual(self.options(2).downloadLimit, 100_000)
        torrent = self.h.ok(
            "torrent-get", {"ids": 1, "fields": ["downloadLimit", "uploadLimited"]}
        )
        self.assertEqual(
            torrent["torrents"], [{"downloadLimit": 50, "uploadLimited": True}]
        )

    def test_sequential(self) -> None:
        """
        Transmission 4.1's C{sequential_download}, set and read back; not a
        boolean is refused and changes nothing.
        """
        self.h.ok("torrent-set", {"ids": [1], "sequential_download": True})
        self.assertTrue(self.options(1).sequential)
        self.assertFalse(self.options(2).sequential)
        got = self.h.ok(
            "torrent-get", {"ids": [1, 2], "fields": ["id", "sequential_download"]}
        )
        self.assertEqual(
            got["torrents"],
            [
                {"id": 1, "sequential_download": True},
                {"id": 2, "sequential_download": False},
            ],
        )
        self.h.refused(
            "torrent-set", {"ids": [2], "sequential_download": "yes"}, "true or false"
        )
        self.assertFalse(self.options(2).sequential)

    def test_seedLimits(self) -> None:
        """
        Sonarr's seed limits.
        """
        self.h.ok(
            "torrent-set",
            {
                "ids": [self.h.session.torrent(2).infoHash.hex()],
                "seedRatioLimit": 1.5,
                "seedRatioMode": 1,
                "seedIdleLimit": 1440,
                "seedIdleMode": 1,
            },
        )
        o = self.options(2)
        self.assertEqual(
            (o.seedRatioLimit, o.seedRatioMode, o.seedIdleLimit, o.seedIdleMode),
            (1.5, 1, 1440, 1),
        )

    def test_files(self) -> None:
        """
        File lists; an empty list means every file.
        """
        self.h.ok(
            "torrent-set", {"ids": 1, "files-unwanted": [0], "priority-high": [1]}
        )
        files = self.h.session.torrent(1).files
        self.assertEqual(
            [(f.wanted, f.priority) for f in files], [(False, 0), (True, 1)]
        )
        self.h.ok("torrent-set", {"ids": 1, "files-wanted": [], "priority-low": []})
        self.assertEqual(
            [(f.wanted, f.priority) for f in files], [(True, -1), (True, -1)]
        )

    def test_labels(self) -> None:
        self.h.ok("torrent-set", {"ids": 1, "labels": [" tv ", "sonarr"]})
        self.assertEqual(self.h.session.torrent(1).labels, ("tv", "sonarr"))
        for labels, text in [
            (["a,b"], "comma"),
            (["", "x"], "empty"),
            (["x", "x"], "duplicates"),
            ("tv", "list of strings"),
            ([1], "list of strings"),
        ]:
            self.h.refused("torrent-set", {"ids": 1, "labels": labels}, text)

    def test_wrongTypes(self) -> None:
        """
        Strings for integers, negative or absurd limits, out-of-range
        modes, a file index of 10^9: refused, and nothing changed on any
        torrent.
        """
        cases = [
            ({"downloadLimit": "50"}, '"downloadLimit" must be an integer'),
            ({"downloadLimit": -1}, "from 0 to"),
            ({"uploadLimit": 10**20}, "from 0 to"),
            ({"downloadLimit": 5.5}, "integer"),
            ({"downloadLimited": "true"}, "true or false"),
            ({"peer-limit": -5}, "peer-limit"),
            ({"peer-limit": 10**9}, "peer-limit"),
            ({"seedRatioMode": 7}, "seedRatioMode"),
            ({"seedRatioLimit": "2"}, "seedRatioLimit"),
            ({"seedRatioLimit": -1}, "seedRatioLimit"),
            ({"bandwidthPriority": 2}, "bandwidthPriority"),
            ({"files-wanted": [10**9]}, "file index out of range"),
            ({"files-wanted": [-1]}, "file index out of range"),
            ({"files-wanted": [2]}, "file index out of range"),
            ({"files-unwanted": ["0"]}, "file indexes"),
            ({"priority-high": 0}, "file indexes"),
            ({"trackerAdd": ["http://x/announce"]}, "trackers"),
        ]
        for extra, text in cases:
            arguments = {"ids": [1, 2], "downloadLimit": 10}
            arguments.update(extra)
            self.h.refused("torrent-set", arguments, text)

    def test_setLocation(self) -> None:
        self.h.ok(
            "torrent-set-location", {"ids": 1, "location": "/srv/new", "move": True}
        )
        self.assertEqual(self.h.session.torrent(1).downloadDir, "/srv/new")
        self.assertIn((1, "setLocation", "/srv/new", True), self.h.session.calls)
        self.h.refused("torrent-set-location", {"ids": 1}, "no location")
        self.h.refused(
            "torrent-set-location", {"ids": 1, "location": "rel"}, "not absolute"
        )
        self.h.refused("torrent-set-location", {"ids": 1, "location": 5}, "string")
        self.h.refused(
            "torrent-set-location", {"ids": 1, "location": "/x", "move": "y"}, "move"
        )

    def test_renamePath(self) -> None:
        answer = self.h.ok(
            "torrent-rename-path",
            {"ids": [1], "path": "Complete Album", "name": "Album"},
        )
        self.assertEqual(answer, {"id": 1, "path": "Complete Album", "name": "Album"})
        self.h.refused(
            "torrent-rename-path", {"path": "x", "name": "y"}, "requires 1 torrent"
        )
        self.h.refused("torrent-rename-path", {"ids": 1, "path": "x"}, '"name"')
        self.h.refused(
            "torrent-rename-path",
            {"ids": 1, "path": "x", "name": "a/b"},
            "invalid new name",
        )
        self.h.refused(
            "torrent-rename-path",
            {"ids": 1, "path": "x", "name": ".."},
            "invalid new name",
        )
        response = self.h.call(
            "torrent-rename-path", {"ids": 1, "path": "nope", "name": "z"}
        )
        self.assertEqual(response["result"], "nope: no such file in the torrent")


class TorrentAddTests(SynchronousTestCase):
    """
    C{torrent-add}.
    """

    def setUp(self) -> None:
        self.h = Harness(self)
        self.path, self.data = makeTorrentFile(self)
        self.meta = metainfo.load(self.data)

    def test_metainfo(self) -> None:
        """
        Base64 metainfo: the session gets the bytes; the answer names the
        new torrent; the same again is a duplicate.
        """
        answer = self.h.ok(
            "torrent-add", {"metainfo": base64.b64encode(self.data).decode()}
        )
        added = {"id": 3, "name": "payload.bin", "hashString": self.meta.infoHash.hex()}
        self.assertEqual(answer, {"torrent-added": added})
        self.assertEqual(self.h.session.added[0][0], self.data)
        answer = self.h.ok(
            "torrent-add", {"metainfo": base64.b64encode(self.data).decode()}
        )
        self.assertEqual(answer, {"torrent-duplicate": added})

    def test_metainfoWithNewlines(self) -> None:
        """
        Base64 broken into lines (as some clients send) is accepted.
        """
        text = base64.encodebytes(self.data).decode()
        self.assertIn("\n", text)
        self.h.ok("torrent-add", {"metainfo": text})
        self.assertEqual(self.h.session.added[0][0], self.data)

    def test_corrupt(self) -> None:
        """
        Garbage, truncated or non-base64 metainfo: Transmission's words.
        """
        for metainfo_ in [
            base64.b64encode(b"not a torrent").decode(),
            base64.b64encode(self.data[:100]).decode(),
            "!!!!",
            "a",
            "",
        ]:
            response = self.h.call("torrent-add", {"metainfo": metainfo_})
            self.assertEqual(response["result"], "invalid or corrupt torrent file")
        self.assertEqual(len(self.h.session.torrents()), 2)

    def test_options(self) -> None:
        """
        Every option reaches the session as an L{AddOptions}.
        """
        self.h.ok(
            "torrent-add",
            {
                "filename": self.path,
                "paused": True,
                "download-dir": "/srv/tv",
                "labels": ["tv-sonarr"],
                "files-unwanted": [0],
                "priority-high": [0],
                "peer-limit": 30,
                "bandwidthPriority": -1,
            },
        )
        source, options = self.h.session.added[0]
        self.assertEqual(source, self.data)
        self.assertEqual(
            options,
            AddOptions(
                downloadDir="/srv/tv",
                paused=True,
                labels=("tv-sonarr",),
                filesUnwanted=(0,),
                priorityHigh=(0,),
                peerLimit=30,
                bandwidthPriority=-1,
            ),
        )
        torrent = self.h.session.torrent(3)
        self.assertEqual(
            (torrent.state, torrent.downloadDir, torrent.labels),
            (STOPPED, "/srv/tv", ("tv-sonarr",)),
        )

    def test_pausedDefault(self) -> None:
        """
        Without C{paused}, the session's C{start-added-torrents} decides.
        """
        self.h.ok("torrent-add", {"filename": self.path})
        self.assertFalse(self.h.session.added[-1][1].paused)
        self.h.ok("session-set", {"start-added-torrents": False})
        self.h.ok(
            "torrent-add",
            {"metainfo": base64.b64encode(makeTorrentFile(self, "b")[1]).decode()},
        )
        self.assertTrue(self.h.session.added[-1][1].paused)

    def test_localNonTorrent(self) -> None:
        """
        A local file that is not a torrent: the session's answer.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("hello\n")
        response = self.h.call("torrent-add", {"filename": path})
        self.assertEqual(response["result"], "invalid or corrupt torrent file")
        self.assertEqual(self.h.session.added[0][0], b"hello\n")

    def test_localUnreadable(self) -> None:
        """
        A missing file, a directory, a FIFO (refused without blocking), a
        relative path.
        """
        fifo = os.path.abspath(self.mktemp())
        os.mkfifo(fifo)
        for filename, text in [
            ("/nonexistent/x.torrent", "No such file or directory"),
            (self.h.dir, "not a regular file"),
            (fifo, "not a regular file"),
            ("x.torrent", "not absolute"),
            ("ftp://127.0.0.1/x.torrent", "unsupported URL"),
        ]:
            self.h.refused("torrent-add", {"filename": filename}, text)
        self.assertEqual(self.h.session.added, [])

    def test_localReadOffTheReactor(self) -> None:
        """
        A local C{.torrent} is read by the reader given (the daemon's reads
        in a thread: a file on a slow mount), with the size limit.
        """
        reads = []

        def readFile(path, maxSize):
            reads.append((path, maxSize))
            return succeed(b"read elsewhere")

        self.h.methods = RPCMethods(
            self.h.session,
            self.h.clock,
            self.h.sessionIds,
            transmissionVersion("0.1.0"),
            self.h.fetch,
            readFile=readFile,
        )
        self.h.call("torrent-add", {"filename": "/srv/x.torrent"})
        self.assertEqual(reads, [("/srv/x.torrent", metainfo.MAX_TORRENT_SIZE)])
        self.assertEqual(self.h.session.added[0][0], b"read elsewhere")

    def test_tooLarge(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.truncate(metainfo.MAX_TORRENT_SIZE + 1)
        self.h.refused("torrent-add", {"filename": path}, "larger than")

    def test_url(self) -> None:
        """
        An http(s) URL is fetched (with the cookies given) and its bytes
        added; a failed fetch is the fetcher's line.
        """
        url = "http://127.0.0.1:1/file.torrent"
        self.h.urlBodies[url] = self.data
        self.h.ok("torrent-add", {"filename": url, "cookies": "a=b"})
        self.assertEqual(self.h.fetched, [(url, "a=b")])
        self.assertEqual(self.h.session.added[0][0], self.data)
        response = self.h.call(
            "torrent-add", {"filename": "https://127.0.0.1:1/missing"}
        )
        self.assertEqual(
            response["result"], "gotMetadataFromURL: http error 404: Not Found"
        )

    def test_magnet(self) -> None:
        """
        A magnet link goes to the session as a string.
        """
        link = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=Linux"
        answer = self.h.ok("torrent-add", {"filename": " " + link + " "})
        self.assertEqual(self.h.session.added[0][0], link)
        self.assertEqual(answer["torrent-added"]["name"], "Linux")
        self.assertEqual(answer["torrent-added"]["hashString"], "ab" * 20)

    def test_badArguments(self) -> None:
        cases = [
            ({}, "no filename or metainfo specified"),
            ({"filename": ""}, "no filename or metainfo specified"),
            ({"filename": 5}, '"filename" must be a string'),
            ({"metainfo": ["x"]}, '"metainfo" must be a string'),
            (
                {"filename": self.path, "download-dir": "relative"},
                "download directory path is not absolute",
            ),
            ({"filename": self.path, "paused": "no"}, "paused"),
            ({"filename": self.path, "labels": "tv"}, "labels"),
            ({"filename": self.path, "files-wanted": {}}, "files-wanted"),
            ({"filename": self.path, "peer-limit": "many"}, "peer-limit"),
            ({"filename": self.path, "bandwidthPriority": 9}, "bandwidthPriority"),
            ({"filename": "http://127.0.0.1:1/x", "cookies": 5}, "cookies"),
        ]
        for arguments, text in cases:
            self.h.refused("torrent-add", arguments, text)
        self.assertEqual(self.h.session.added, [])
        self.assertEqual(self.h.fetched, [])

    def test_fileIndexOutOfRange(self) -> None:
        """
        A file index the torrent does not have: the session refuses it.
        """
        response = self.h.call(
            "torrent-add", {"filename": self.path, "files-wanted": [10**9]}
        )
        self.assertEqual(response["result"], "file index out of range")
        self.assertEqual(len(self.h.session.torrents()), 2)


class SessionMethodTests(SynchronousTestCase):
    """
    C{session-get}, C{session-set}, C{session-stats}, C{session-close},
    C{free-space}, C{port-test}, C{blocklist-update}.
    """

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_loneSurrogates(self) -> None:
        """
        A string that is not Unicode text (JSON's C{"\\ud800"}), as a path,
        a label or a magnet link, is refused: no setting or torrent holds
        one, and C{session-get} still answers.
        """
        bad = "/tmp/x\ud800"
        self.h.refused("session-set", {"download-dir": bad}, "not valid Unicode")
        self.h.refused("free-space", {"path": bad}, "not valid Unicode")
        self.h.refused(
            "torrent-add",
            {"filename": "magnet:?xt=urn:btih:" + "a" * 40, "download-dir": bad},
            "not valid Unicode",
        )
        self.h.refused(
            "torrent-add",
            {"filename": "magnet:?xt=urn:btih:" + "a" * 40, "labels": ["x\udfff"]},
            "not valid Unicode",
        )
        self.h.ok("session-get")

    def test_getAll(self) -> None:
        answer = self.h.ok("session-get")
        self.assertEqual(set(answer), set(SESSION_FIELDS))
        self.assertEqual(answer["version"], "3.00 (btorrent 0.1.0)")
        self.assertIs(type(answer["rpc-version"]), int)
        self.assertEqual(
            (answer["rpc-version"], answer["rpc-version-minimum"]), (16, 1)
        )
        self.assertEqual(answer["session-id"], self.h.sessionIds.current())
        self.assertEqual(answer["download-dir"], self.h.dir)
        self.assertEqual(answer["config-dir"], "/var/lib/btorrent")
        self.assertEqual(answer["speed-limit-down"], 100)
        self.assertEqual(answer["alt-speed-up"], 50)
        self.assertIs(answer["speed-limit-down-enabled"], False)
        self.assertIs(type(answer["seedRatioLimit"]), float)
        self.assertEqual(answer["encryption"], "preferred")
        self.assertEqual(answer["units"]["speed-bytes"], 1000)
        self.assertIs(type(answer["download-dir-free-space"]), int)
        self.assertGreater(answer["download-dir-free-space"], 0)
        for name, value in answer.items():
            self.assertIsNotNone(value, name)

    def test_getFields(self) -> None:
        answer = self.h.ok(
            "session-get", {"fields": ["version", "download-dir", "bogus"]}
        )
        self.assertEqual(set(answer), {"version", "download-dir"})
        self.h.refused("session-get", {"fields": "version"}, '"fields"')

    def test_freeSpaceUnknown(self) -> None:
        self.h.session.settings.downloadDir = "/nonexistent/dir"
        self.assertEqual(self.h.ok("session-get")["download-dir-free-space"], -1)

    def test_set(self) -> None:
        """
        Limits in kB/s become bytes/s; every mapped setting reaches the
        session in one call.
        """
        self.h.ok(
            "session-set",
            {
                "speed-limit-down": 300,
                "speed-limit-down-enabled": True,
                "speed-limit-up": 200,
                "speed-limit-up-enabled": True,
                "alt-speed-down": 10,
                "alt-speed-enabled": True,
                "download-dir": "/srv/downloads",
                "peer-port": 6881,
                "encryption": "required",
                "seedRatioLimit": 1.25,
                "seedRatioLimited": True,
                "idle-seeding-limit": 90,
                "peer-limit-global": 300,
                "download-queue-size": 3,
                "dht-enabled": False,
                "start-added-torrents": False,
                "version": "ignored",
                "rpc-version": 99,
                "utp-enabled": False,
                "some-future-key": 1,
            },
        )
        s = self.h.session.settings
        self.assertEqual((s.speedLimitDown, s.speedLimitDownEnabled), (300_000, True))
        self.assertEqual(
            (s.speedLimitUp, s.altSpeedDown, s.altSpeedEnabled), (200_000, 10_000, True)
        )
        self.assertEqual(
            (s.downloadDir, s.peerPort, s.encryption),
            ("/srv/downloads", 6881, "required"),
        )
        self.assertEqual(
            (s.seedRatioLimit, s.seedRatioLimited, s.idleSeedingLimit), (1.25, True, 90)
        )
        self.assertEqual((s.peerLimitGlobal, s.downloadQueueSize), (300, 3))
        self.assertEqual((s.dhtEnabled, s.startAddedTorrents), (False, False))
        self.assertEqual(
            len([c for c in self.h.session.calls if c[0] == "setSettings"]), 1
        )
        answer = self.h.ok(
            "session-get", {"fields": ["speed-limit-down", "speed-limit-up-enabled"]}
        )
        self.assertEqual(
            answer, {"speed-limit-down": 300, "speed-limit-up-enabled": True}
        )

    def test_setRefused(self) -> None:
        """
        Wrong types and values, and settings btorrent does not have:
        refused, nothing changed (even the good keys beside them).
        """
        cases = [
            ({"speed-limit-down": "300"}, '"speed-limit-down" must be an integer'),
            ({"speed-limit-down": -1}, "from 0 to"),
            ({"speed-limit-up": 10**30}, "from 0 to"),
            ({"peer-port": 0}, "peer-port"),
            ({"peer-port": 70000}, "peer-port"),
            (
                {"download-dir": "relative/dir"},
                "download directory path is not absolute",
            ),
            ({"download-dir": 5}, "download-dir"),
            ({"encryption": "maybe"}, '"encryption" must be'),
            ({"seedRatioLimit": float("inf")}, "seedRatioLimit"),
            ({"dht-enabled": "yes"}, "dht-enabled"),
            ({"utp-enabled": True}, '"utp-enabled" is not supported'),
            ({"incomplete-dir-enabled": 1}, "incomplete-dir-enabled"),
        ]
        for extra, text in cases:
            arguments = {"speed-limit-down-enabled": True}
            arguments.update(extra)
            self.h.refused("session-set", arguments, text)

    def test_setSessionRefuses(self) -> None:
        """
        The session's own L{ControlError} is the result.
        """

        def refuse(changes):
            raise ControlError("peer port 6881 is in use")

        self.h.session.setSettings = refuse
        response = self.h.call("session-set", {"peer-port": 6881})
        self.assertEqual(response["result"], "peer port 6881 is in use")

    def test_stats(self) -> None:
        answer = self.h.ok("session-stats")
        self.assertEqual(
            (
                answer["torrentCount"],
                answer["activeTorrentCount"],
                answer["pausedTorrentCount"],
            ),
            (2, 2, 0),
        )
        self.assertEqual(
            (answer["downloadSpeed"], answer["uploadSpeed"]), (48_000, 12_345)
        )
        for key in ("current-stats", "cumulative-stats"):
            self.assertEqual(
                set(answer[key]),
                {
                    "uploadedBytes",
                    "downloadedBytes",
                    "filesAdded",
                    "sessionCount",
                    "secondsActive",
                },
            )
            for value in answer[key].values():
                self.assertIs(type(value), int)
        self.assertEqual(answer["cumulative-stats"]["sessionCount"], 3)

    def test_close(self) -> None:
        """
        C{session-close} answers first, then closes the session.
        """
        self.h.ok("session-close")
        self.assertFalse(self.h.session.closed)
        self.h.clock.advance(0)
        self.assertTrue(self.h.session.closed)

    def test_freeSpace(self) -> None:
        answer = self.h.ok("free-space", {"path": self.h.dir})
        self.assertEqual(answer["path"], self.h.dir)
        self.assertIs(type(answer["size-bytes"]), int)
        self.assertGreater(answer["size-bytes"], 0)
        response = self.h.call("free-space", {"path": "/nonexistent/dir"})
        self.assertIn("No such file or directory", response["result"])
        self.assertEqual(
            response["arguments"], {"path": "/nonexistent/dir", "size-bytes": -1}
        )
        self.h.refused("free-space", {}, "directory path argument is missing")
        self.h.refused("free-space", {"path": "rel"}, "directory path is not absolute")

    def test_portTestAndBlocklist(self) -> None:
        self.assertEqual(self.h.ok("port-test"), {"port-is-open": False})
        response = self.h.call("blocklist-update")
        self.assertIn("no blocklist", response["result"])


#: JSON values as a client may send them (NaN and infinities too: Python's
#: decoder would take them if they got past the HTTP side).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=15,
)

#: Values that are near what the methods expect, to reach deep checks.
PLAUSIBLE = st.sampled_from(
    [
        0,
        1,
        2,
        -1,
        10**9,
        10**20,
        1.5,
        2.0,
        True,
        False,
        None,
        "1",
        "",
        "/abs",
        "rel",
        "recently-active",
        "ab" * 20,
        [],
        [0],
        [1, 2],
        [10**9],
        ["tv"],
        ["a,b"],
        [{}],
        {},
        "magnet:?xt=urn:btih:" + "cd" * 20,
        "required",
    ]
)

_IDS = ["ids"]
_FILES = [
    "files-wanted",
    "files-unwanted",
    "priority-high",
    "priority-low",
    "priority-normal",
]

#: The argument names each method reads.
METHOD_KEYS = {
    "torrent-get": _IDS + ["fields", "format"],
    "torrent-set": _IDS
    + _FILES
    + [
        "downloadLimit",
        "downloadLimited",
        "uploadLimit",
        "uploadLimited",
        "honorsSessionLimits",
        "seedRatioLimit",
        "seedRatioMode",
        "seedIdleLimit",
        "seedIdleMode",
        "peer-limit",
        "bandwidthPriority",
        "queuePosition",
        "labels",
        "trackerAdd",
    ],
    "torrent-add": _FILES
    + [
        "filename",
        "metainfo",
        "cookies",
        "paused",
        "download-dir",
        "labels",
        "peer-limit",
        "bandwidthPriority",
    ],
    "session-set": list(SESSION_FIELDS),
    "session-get": ["fields"],
    "torrent-remove": _IDS + ["delete-local-data"],
    "torrent-set-location": _IDS + ["location", "move"],
    "torrent-rename-path": _IDS + ["path", "name"],
    "free-space": ["path"],
}


class FuzzTests(SynchronousTestCase):
    """
    Any request gets an answer with a result line, never an internal
    error, and the answer is strict JSON.
    """

    @given(data=st.data())
    @settings(max_examples=600, deadline=None)
    def test_anyArguments(self, data) -> None:
        if not getattr(self, "harness", None) or not self.harness.session.torrents():
            self.harness = Harness(self)
        method = data.draw(
            st.sampled_from(RPCMethods(None, None, None, "", None).methodNames + ["x"])
        )
        keys = METHOD_KEYS.get(method, _IDS) + ["bogus"]
        arguments = data.draw(
            st.dictionaries(st.sampled_from(keys), PLAUSIBLE | JSON_VALUES, max_size=5)
        )
        tag = data.draw(JSON_VALUES)
        request = {"method": method, "arguments": arguments, "tag": tag}
        response = self.successResultOf(self.harness.methods.handle(request))
        self.assertIsInstance(response["result"], str)
        self.assertNotIn("internal error", response["result"])
        self.assertIsInstance(response["arguments"], dict)
        json.loads(_jsonBytes(response))
        self.assertEqual(self.flushLoggedErrors(), [])

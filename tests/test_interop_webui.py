"""
Web pages in a real headless Chromium, against a server that speaks the
Transmission RPC on the page's own origin: btorrent's own page
(C{btorrent/control/static}) and Transmission's web client.

The tests are written once, in mixins (L{WebPageTests} for btorrent's
page, L{TransmissionWebClientTests} for Transmission's client), for any
such server: a concrete test class says how to start it
(C{startServer} returns a L{ServerUnderTest}).  Here they run against a
real transmission-daemon 3.00, which serves a web directory from
C{TRANSMISSION_WEB_HOME} at C{/transmission/web/}; btorrent's daemon,
which serves its page at C{/}, needs only another subclass of each.

The browser's console must stay clean, except for the one C{409} per page
load with which the RPC hands out its session id (Chromium logs every
failed HTTP status as an error; the page keeps the id from then on).
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.trial.unittest import SynchronousTestCase

import btorrent.control
from tests.builders import buildTorrent
from tests.realbrowser import Browser
from tests.realpeers import freePort
from tests.realseeders import libtorrentLeecher, libtorrentSeeder
from tests.realtransmission import RPCClient, Transmission

#: The page's directory, as the package ships it.
STATIC = os.path.join(
    os.path.dirname(os.path.abspath(btorrent.control.__file__)), "static"
)

#: Transmission's web client, as Debian's transmission-common installs it.
TRANSMISSION_WEB = "/usr/share/transmission/web"

#: A torrent name that would run script if it were inserted as HTML.
HOSTILE_NAME = "<img src=x onerror=alert(1)>"

#: What the page shows in a row, read in one call (by its class names).
_READ_ROWS = """
const rows = {};
for (const li of document.querySelectorAll("#torrents li.torrent")) {
  const text = (s) => li.querySelector(s).textContent;
  const shown = (s) => !li.querySelector(s).hidden;
  rows[li.dataset.id] = {
    name: text(".name"), size: text(".size"), percent: text(".percent"),
    state: text(".state"), status: Number(li.dataset.status),
    rates: text(".rates"), peers: text(".peers"), eta: text(".eta"),
    ratio: text(".ratio"),
    error: shown(".error-text") ? text(".error-text") : "",
    start: shown(".start"), stop: shown(".stop"),
  };
}
return rows;
"""

#: The rows of one table of the detail view, as lists of cell texts.
_READ_TABLE = """
return Array.from(document.querySelectorAll("#" + arguments[0] + " tbody tr"),
  (tr) => Array.from(tr.cells, (td) => td.textContent));
"""


@dataclass
class ServerUnderTest:
    """
    A running server that serves the page and the Transmission RPC.

    @ivar pageURL: the page's address (on 127.0.0.1).
    @ivar rpc: a client of its RPC.
    @ivar peerPort: its BitTorrent port on 127.0.0.1 (a real peer connects
        in there).
    @ivar stop: stops it.
    """

    pageURL: str
    rpc: RPCClient
    peerPort: int
    stop: Callable[[], None]


def isSessionHandshake(entry: Dict) -> bool:
    """
    Whether a browser log entry is the RPC's 409 that hands out the
    session id (logged by Chromium as a failed load).
    """
    # Chromium names the RPC's URL, or the script that sent the request
    # (jQuery in Transmission's web client); nothing else on these pages
    # answers 409.
    return (
        entry["source"] == "network" and "status of 409 (Conflict)" in entry["message"]
    )


class BrowserTests:
    """
    What the browser tests share (mixed into a C{SynchronousTestCase}): a
    fresh server (L{startServer}, defined by the concrete test class) and a
    fresh browser per test, torrents made and added over the RPC, and the
    console checked at the end.
    """

    def startServer(self, directory: str) -> ServerUnderTest:
        """
        Start the server under test, with its files in C{directory}.
        """
        raise NotImplementedError()

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.server = self.startServer(os.path.join(self.base, "server"))
        self.addCleanup(self.server.stop)
        self.browser = Browser()
        self.addCleanup(self.browser.close)
        self.pageLoads = 0
        self.serial = 0

    # -- data and the RPC -------------------------------------------------

    def makeTorrent(
        self,
        name: str,
        files: Sequence[Tuple[str, int]],
        trackers: Sequence[str] = (),
        comment: str = None,
    ) -> Tuple[bytes, str]:
        """
        Write random files under a new directory and make their torrent
        with btorrent's own C{metainfo.create}.

        @param name: the torrent's name (a file, or the top directory when
            C{files} has paths with C{/}).
        @param files: C{(path relative to the torrent's root, size)}; a
            single C{("", size)} makes a single-file torrent.
        @return: the .torrent bytes and the directory that holds the data
            (the download directory that makes it complete).
        """
        parent = self.newDirectory("data")
        trackers = [[url] for url in trackers]
        if len(files) == 1 and not files[0][0]:
            built = buildTorrent(
                parent,
                [(name, files[0][1])],
                single=True,
                trackers=trackers,
                comment=comment,
            )
        else:
            built = buildTorrent(
                os.path.join(parent, name),
                list(files),
                trackers=trackers,
                comment=comment,
            )
        return built.torrentBytes, parent

    def emptyDirectory(self) -> str:
        """
        A new empty directory to download into.
        """
        return self.newDirectory("empty")

    def newDirectory(self, kind: str) -> str:
        """
        A new directory C{base/kind/N}.
        """
        self.serial += 1
        path = os.path.join(self.base, kind, str(self.serial))
        os.makedirs(path)
        return path

    def addTorrent(self, torrent: bytes, downloadDir: str, paused: bool = False) -> int:
        """
        Add a torrent over the RPC.

        @return: its id.
        """
        import base64

        reply = self.server.rpc.call(
            "torrent-add",
            metainfo=base64.b64encode(torrent).decode(),
            paused=paused,
            **{"download-dir": downloadDir},
        )
        return reply["torrent-added"]["id"]

    def status(self, torrentId: int) -> Dict:
        """
        What the RPC reports of one torrent.
        """
        reply = self.server.rpc.call(
            "torrent-get",
            ids=[torrentId],
            fields=["id", "name", "status", "percentDone", "error", "errorString"],
        )
        return reply["torrents"][0] if reply["torrents"] else None

    def waitForRPC(self, torrentId: int, predicate, description: str) -> Dict:
        """
        Poll the RPC until C{predicate(status)} holds.
        """
        return self.browser.waitFor(
            lambda: (lambda s: s if s and predicate(s) else None)(
                self.status(torrentId)
            ),
            timeout=30,
            description=f"torrent {torrentId}: {description}",
        )

    def seeding(self, name: str = "seeded", files=(("", 100_000),), **kw) -> int:
        """
        A torrent whose complete data the server verifies and seeds.

        @return: its id, once the RPC reports it seeding at 100 %.
        """
        torrent, parent = self.makeTorrent(name, files, **kw)
        torrentId = self.addTorrent(torrent, parent)
        self.waitForRPC(
            torrentId,
            lambda s: s["status"] == 6 and s["percentDone"] == 1,
            "seeding at 100 %",
        )
        return torrentId

    # -- the page ---------------------------------------------------------

    def openPage(self) -> None:
        """
        Load the page.
        """
        self.pageLoads += 1
        self.browser.open(self.server.pageURL)

    def click(self, selector: str) -> None:
        """
        Click an element of the page, as a person would.
        """
        self.browser.driver.find_element(By.CSS_SELECTOR, selector).click()

    def text(self, elementId: str) -> str:
        """
        The text of the element with id C{elementId}.
        """
        return self.browser.script(
            "return document.getElementById(arguments[0]).textContent", elementId
        )

    def assertConsoleClean(self) -> None:
        """
        No console errors; at most one session-id 409 per page load (the
        page keeps the id).
        """
        self.assertEqual(self.browser.consoleErrors(allowed=isSessionHandshake), [])
        handshakes = [e for e in self.browser.log() if isSessionHandshake(e)]
        self.assertLessEqual(len(handshakes), self.pageLoads)
        self.assertIsNone(self.browser.alertText())


class WebPageTests(BrowserTests):
    """
    btorrent's page, on any server that serves it with the Transmission RPC.

    Every test adds its torrents over the RPC or through the page, and checks
    what the page shows against what the RPC reports.
    """

    def rows(self) -> Dict[int, Dict]:
        """
        What the page shows of every torrent, by id.
        """
        return {int(k): v for k, v in self.browser.script(_READ_ROWS).items()}

    def waitForRow(self, torrentId: int, predicate, description: str) -> Dict:
        """
        Wait until the page shows torrent C{torrentId} and C{predicate(row)}
        holds.
        """
        return self.browser.waitFor(
            lambda: (lambda r: r if r and predicate(r) else None)(
                self.rows().get(torrentId)
            ),
            timeout=15,
            description=f"row {torrentId}: {description}",
        )

    def clickAction(self, torrentId: int, action: str) -> None:
        """
        Click a torrent's C{start}, C{stop}, C{verify}, C{remove} or
        C{name} button.
        """
        self.click(f'#torrents li[data-id="{torrentId}"] button.{action}')

    def table(self, tableId: str) -> List[List[str]]:
        """
        The rows of a detail table, as lists of cell texts.
        """
        return self.browser.script(_READ_TABLE, tableId)

    # -- the tests --------------------------------------------------------

    def test_list(self) -> None:
        """
        The page lists a torrent the server seeds at 100 % and one that is
        stopped at 0 %, with their sizes and states as the RPC reports
        them, and the session's figures in the status bar; it keeps
        refreshing with the session id it got once.
        """
        seeded = self.seeding("complete.bin", (("", 300_000),))
        torrent, _ = self.makeTorrent("stopped.bin", (("", 200_000),))
        stopped = self.addTorrent(torrent, self.emptyDirectory(), paused=True)
        self.openPage()
        row = self.waitForRow(seeded, lambda r: r["percent"] == "100%", "100 %")
        self.assertEqual(row["name"], "complete.bin")
        self.assertEqual(row["size"], "300 kB")
        self.assertEqual((row["status"], row["state"]), (6, "Seeding"))
        self.assertEqual((row["start"], row["stop"]), (False, True))
        self.assertEqual(row["error"], "")
        self.assertIn("Ratio", row["ratio"])
        row = self.waitForRow(stopped, lambda r: r["status"] == 0, "stopped")
        self.assertEqual(
            (row["name"], row["size"], row["percent"], row["state"]),
            ("stopped.bin", "200 kB", "0.0%", "Stopped"),
        )
        self.assertEqual((row["start"], row["stop"]), (True, False))
        self.browser.waitFor(
            lambda: self.text("status-count") == "2 torrents, 1 active",
            description="the status bar's count",
        )
        self.assertIn("↓", self.text("status-rates"))
        self.assertTrue(self.text("status-session").startswith("Session: "))
        # Three refreshes later the page still uses its first session id.
        time.sleep(6.5)
        self.assertEqual(sorted(self.rows()), sorted([seeded, stopped]))
        self.assertConsoleClean()

    def test_stopStart(self) -> None:
        """
        Stop and Start on the page change a torrent's state as the RPC
        reports it: a seeding torrent stops and seeds again, a stopped
        empty one starts downloading and stops.
        """
        seeded = self.seeding()
        torrent, _ = self.makeTorrent("empty.bin", (("", 50_000),))
        idle = self.addTorrent(torrent, self.emptyDirectory(), paused=True)
        self.openPage()
        self.waitForRow(seeded, lambda r: r["status"] == 6, "seeding")

        self.clickAction(seeded, "stop")
        self.waitForRPC(seeded, lambda s: s["status"] == 0, "stopped")
        row = self.waitForRow(seeded, lambda r: r["status"] == 0, "stopped")
        self.assertEqual(
            (row["state"], row["start"], row["stop"]), ("Stopped", True, False)
        )
        self.clickAction(seeded, "start")
        self.waitForRPC(seeded, lambda s: s["status"] == 6, "seeding again")
        self.waitForRow(seeded, lambda r: r["state"] == "Seeding", "seeding again")

        self.waitForRow(idle, lambda r: r["status"] == 0, "stopped")
        self.clickAction(idle, "start")
        self.waitForRPC(idle, lambda s: s["status"] == 4, "downloading")
        row = self.waitForRow(idle, lambda r: r["status"] == 4, "downloading")
        self.assertEqual(row["state"], "Downloading")
        self.clickAction(idle, "stop")
        self.waitForRPC(idle, lambda s: s["status"] == 0, "stopped")
        self.waitForRow(idle, lambda r: r["state"] == "Stopped", "stopped")
        self.assertConsoleClean()

    def test_addByUpload(self) -> None:
        """
        A .torrent file chosen on the page is uploaded (C{metainfo}) and
        added, stopped when "start" is unchecked; a file that is not a
        torrent gives the RPC's error as a notice.
        """
        torrent, _ = self.makeTorrent("uploaded.bin", (("", 70_000),))
        path = os.path.join(self.base, "uploaded.torrent")
        with open(path, "wb") as f:
            f.write(torrent)
        self.openPage()
        self.browser.waitFor(lambda: self.text("status-count"), description="a refresh")
        self.click("#add-start")
        self.browser.driver.find_element(By.ID, "add-file").send_keys(path)
        self.click("#add-button")
        self.browser.waitFor(
            lambda: self.text("notice") == "Added “uploaded.bin”.",
            description="the notice",
        )
        reply = self.server.rpc.call("torrent-get", fields=["id", "name"])
        [added] = reply["torrents"]
        self.assertEqual(added["name"], "uploaded.bin")
        self.waitForRPC(added["id"], lambda s: s["status"] == 0, "stopped")
        row = self.waitForRow(added["id"], lambda r: r["status"] == 0, "stopped")
        self.assertEqual((row["name"], row["state"]), ("uploaded.bin", "Stopped"))

        garbage = os.path.join(self.base, "garbage.torrent")
        with open(garbage, "wb") as f:
            f.write(b"this is not bencoded")
        self.browser.driver.find_element(By.ID, "add-file").send_keys(garbage)
        self.click("#add-button")
        self.browser.waitFor(
            lambda: self.text("notice").startswith("garbage.torrent: "),
            description="an error notice",
        )
        self.assertIn(
            "error",
            self.browser.driver.find_element(By.ID, "notice").get_attribute("class"),
        )
        self.assertEqual(
            len(self.server.rpc.call("torrent-get", fields=["id"])["torrents"]), 1
        )
        self.assertConsoleClean()

    def test_addByMagnet(self) -> None:
        """
        A magnet link typed into the page is added (C{filename}) and listed
        under its display name.
        """
        infoHash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
        self.openPage()
        self.browser.waitFor(lambda: self.text("status-count"), description="a refresh")
        self.click("#add-start")
        field = self.browser.driver.find_element(By.ID, "add-url")
        field.send_keys(f"magnet:?xt=urn:btih:{infoHash}&dn=from-a-magnet")
        self.click("#add-button")
        self.browser.waitFor(
            lambda: self.text("notice").startswith("Added "), description="the notice"
        )
        reply = self.server.rpc.call("torrent-get", fields=["id", "hashString"])
        [added] = reply["torrents"]
        self.assertEqual(added["hashString"], infoHash)
        row = self.waitForRow(added["id"], lambda r: True, "the magnet")
        self.assertEqual(row["name"], "from-a-magnet")
        self.assertEqual(field.get_attribute("value"), "")
        self.assertConsoleClean()

    def test_hostileName(self) -> None:
        """
        A torrent named like markup, uploaded through the page, is shown as
        that text in the notice, the list, the remove dialog and the detail
        view; so are its file names, tracker URL and comment (written with
        entities, which would turn into other characters if parsed as
        HTML, or as markup); nothing of it becomes an element or runs.
        """
        entity = "a&lt;b&gt;&amp;.bin"
        tracker = f"http://127.0.0.1:{freePort()}/announce?x=&lt;i&gt;"
        comment = '<script>document.title="pwned"</script><b>bold</b>&lt;'
        torrent, parent = self.makeTorrent(
            HOSTILE_NAME,
            ((entity, 20_000), (HOSTILE_NAME, 10_000)),
            trackers=[tracker],
            comment=comment,
        )
        path = os.path.join(self.base, "hostile.torrent")
        with open(path, "wb") as f:
            f.write(torrent)
        self.openPage()
        self.browser.waitFor(lambda: self.text("status-count"), description="a refresh")
        self.browser.driver.find_element(By.ID, "add-file").send_keys(path)
        self.click("#add-button")
        self.browser.waitFor(
            lambda: self.text("notice") == f"Added “{HOSTILE_NAME}”.",
            description="the notice",
        )
        [added] = self.server.rpc.call(
            "torrent-get", fields=["id", "files", "trackerStats"]
        )["torrents"]
        row = self.waitForRow(added["id"], lambda r: True, "the torrent")
        self.assertEqual(row["name"], HOSTILE_NAME)

        # The server may make file names safe for a disk (Transmission turns
        # < and > into _): the page shows what the RPC reports.
        fileNames = sorted(f["name"] for f in added["files"])
        self.assertIn(entity, fileNames[0] + fileNames[1])
        self.clickAction(added["id"], "name")
        self.browser.waitFor(
            lambda: sorted(r[0] for r in self.table("detail-files")) == fileNames,
            description="the file names",
        )
        self.browser.waitFor(
            lambda: [r[1] for r in self.table("detail-trackers")]
            == [t["announce"] for t in added["trackerStats"]],
            description="the tracker",
        )
        self.assertIn("&lt;i&gt;", self.table("detail-trackers")[0][1])
        self.assertEqual(self.text("detail-name"), HOSTILE_NAME)
        self.assertIn(comment, self.text("detail-info"))
        self.clickAction(added["id"], "remove")
        self.assertEqual(self.text("remove-name"), HOSTILE_NAME)
        self.click("#remove-dialog button[value=cancel]")

        elements = self.browser.script(
            "return [document.querySelectorAll('img').length,"
            " document.querySelectorAll('main b, main i, main script').length,"
            " document.title]"
        )
        self.assertEqual(elements, [0, 0, "btorrent"])
        self.assertIsNone(self.browser.alertText())
        self.assertConsoleClean()

    def test_detail(self) -> None:
        """
        The detail view of a seeding multi-file torrent shows its files at
        100 %, the real libtorrent leecher connected to it, and its tracker;
        Close hides it.
        """
        tracker = f"http://127.0.0.1:{freePort()}/announce"
        torrent, parent = self.makeTorrent(
            "album", (("a.bin", 100_000), ("sub/b.bin", 50_000)), trackers=[tracker]
        )
        torrentId = self.addTorrent(torrent, parent)
        self.waitForRPC(torrentId, lambda s: s["status"] == 6, "seeding")
        leecher = libtorrentLeecher(self.emptyDirectory(), torrent)
        self.addCleanup(leecher.close)
        # Slow, so that it stays connected while the page looks.
        leecher.handle.set_download_limit(10_000)
        leecher.connect("127.0.0.1", self.server.peerPort)
        self.openPage()
        self.waitForRow(torrentId, lambda r: r["percent"] == "100%", "complete")
        self.clickAction(torrentId, "name")
        detail = self.browser.driver.find_element(By.ID, "detail")
        self.assertTrue(detail.is_displayed())
        self.browser.waitFor(
            lambda: len(self.table("detail-files")) == 2
            and self.table("detail-files")[0][0] != "No files",
            description="the files",
        )
        self.assertEqual(
            self.table("detail-files"),
            [["album/a.bin", "100 kB", "100%"], ["album/sub/b.bin", "50.0 kB", "100%"]],
        )
        peers = self.browser.waitFor(
            lambda: [
                p for p in self.table("detail-peers") if p[0].startswith("127.0.0.1:")
            ],
            timeout=20,
            description="the libtorrent peer",
        )
        self.assertIn("libtorrent", peers[0][1].lower())
        trackers = self.table("detail-trackers")
        self.assertEqual([t[:2] for t in trackers], [["0", tracker]])
        self.assertEqual(self.text("detail-name"), "album")
        self.assertIn("150 kB (10 pieces of 16.4 kB)", self.text("detail-info"))
        self.click("#detail-close")
        self.assertFalse(detail.is_displayed())
        self.assertConsoleClean()

    def test_verify(self) -> None:
        """
        Verify on the page rechecks the data: a piece damaged on disk
        brings the torrent below 100 % in the RPC and on the page.
        """
        torrent, parent = self.makeTorrent("damaged.bin", (("", 10 * 16384),))
        torrentId = self.addTorrent(torrent, parent)
        self.waitForRPC(torrentId, lambda s: s["percentDone"] == 1, "complete")
        self.openPage()
        self.waitForRow(torrentId, lambda r: r["percent"] == "100%", "complete")
        with open(os.path.join(parent, "damaged.bin"), "r+b") as f:
            f.seek(20_000)
            byte = f.read(1)
            f.seek(20_000)
            f.write(bytes([byte[0] ^ 0xFF]))
        self.clickAction(torrentId, "verify")
        status = self.waitForRPC(
            torrentId,
            lambda s: s["status"] not in (1, 2) and s["percentDone"] < 1,
            "rechecked",
        )
        # One piece in ten is gone (Transmission says 0.8999: it cuts to
        # four decimals).
        self.assertAlmostEqual(status["percentDone"], 0.9, places=3)
        expected = f"{math.floor(status['percentDone'] * 1000) / 10:.1f}%"
        row = self.waitForRow(
            torrentId, lambda r: r["percent"] != "100%", "below 100 %"
        )
        self.assertEqual(row["percent"], expected)
        self.assertConsoleClean()

    def test_remove(self) -> None:
        """
        Remove asks first: Cancel keeps the torrent; Remove drops it and
        keeps its data; with "delete data" checked the button says so and
        the data goes too.
        """
        keep = self.seeding("keep.bin")
        drop = self.seeding("drop.bin")
        keepPath = os.path.join(self.base, "data")
        keepFiles = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(keepPath) for f in fs
        )
        self.assertEqual(len(keepFiles), 2)
        self.openPage()
        self.waitForRow(drop, lambda r: True, "listed")
        dialog = self.browser.driver.find_element(By.ID, "remove-dialog")

        self.clickAction(keep, "remove")
        self.assertTrue(dialog.is_displayed())
        self.assertEqual(self.text("remove-name"), "keep.bin")
        self.click("#remove-dialog button[value=cancel]")
        self.assertFalse(dialog.is_displayed())
        time.sleep(2.5)
        self.assertIsNotNone(self.status(keep))

        self.clickAction(keep, "remove")
        self.assertEqual(self.text("remove-confirm"), "Remove")
        self.click("#remove-confirm")
        self.browser.waitFor(lambda: self.status(keep) is None, description="removed")
        self.browser.waitFor(lambda: keep not in self.rows(), description="row gone")
        self.assertTrue(all(os.path.exists(p) for p in keepFiles))

        self.clickAction(drop, "remove")
        self.click("#remove-data")
        self.assertEqual(self.text("remove-confirm"), "Remove and delete data")
        self.assertTrue(
            self.browser.driver.find_element(By.ID, "remove-warning").is_displayed()
        )
        self.click("#remove-confirm")
        self.browser.waitFor(lambda: self.status(drop) is None, description="removed")
        self.browser.waitFor(
            lambda: not [
                p for p in keepFiles if p.endswith("drop.bin") and os.path.exists(p)
            ],
            description="its data deleted",
        )
        self.browser.waitFor(lambda: self.rows() == {}, description="no rows")
        self.assertTrue(self.browser.driver.find_element(By.ID, "empty").is_displayed())
        self.assertConsoleClean()

    def test_download(self) -> None:
        """
        A torrent the server downloads from a real libtorrent seeder rises
        to 100 % on the page and then seeds; the status bar counts the
        bytes.
        """
        torrent, parent = self.makeTorrent("download.bin", (("", 4_000_000),))
        seeder = libtorrentSeeder(parent, torrent)
        self.addCleanup(seeder.close)
        torrentId = self.addTorrent(torrent, self.emptyDirectory())
        self.openPage()
        first = self.waitForRow(torrentId, lambda r: True, "listed")
        self.assertNotEqual(first["percent"], "100%")
        seeder.connect("127.0.0.1", self.server.peerPort)
        seen = {first["percent"]}

        def done():
            row = self.rows()[torrentId]
            seen.add(row["percent"])
            return row["percent"] == "100%" and row["state"] == "Seeding"

        self.browser.waitFor(done, timeout=60, description="100 % and seeding")
        self.assertEqual(self.status(torrentId)["percentDone"], 1)
        self.assertIn("0.0%", seen)
        self.browser.waitFor(
            lambda: re.match(r"Session: 4\.\d\d MB down", self.text("status-session")),
            description="the session's bytes",
        )
        self.assertConsoleClean()

    def test_phone(self) -> None:
        """
        On a phone-sized screen (390 x 844) the page lays out at the
        phone's width: nothing overflows sideways, neither the list (with
        a long unbroken name) nor the detail view, and every button is on
        screen.
        """
        self.browser.emulatePhone(390, 844)
        long = "a-very-long-torrent-name-without-spaces-" * 4 + ".bin"
        seeded = self.seeding(long, (("", 30_000),))
        self.seeding("short.bin")
        self.openPage()
        self.waitForRow(seeded, lambda r: r["percent"] == "100%", "complete")
        self.assertEqual(self.browser.script("return window.innerWidth"), 390)
        self.assertNoSidewaysOverflow()
        self.clickAction(seeded, "name")
        self.browser.waitFor(
            lambda: self.table("detail-files")
            and self.table("detail-files")[0][0] == long,
            description="the files",
        )
        self.assertNoSidewaysOverflow()
        self.assertConsoleClean()

    def assertNoSidewaysOverflow(self) -> None:
        """
        The page is no wider than the window, and every torrent card and
        button lies within it.
        """
        width, scrollWidth, outside = self.browser.script("""
            const width = document.documentElement.clientWidth;
            const outside = [];
            for (const e of document.querySelectorAll(
                "#torrents li, #torrents button, header, #detail, #status")) {
              const r = e.getBoundingClientRect();
              if (r.width > 0 && (r.left < 0 || r.right > width + 0.5)) {
                outside.push(e.className || e.id || e.tagName);
              }
            }
            return [width, document.documentElement.scrollWidth, outside];
            """)
        self.assertEqual(width, 390)
        self.assertLessEqual(scrollWidth, width)
        self.assertEqual(outside, [])


class TransmissionWebClientTests(BrowserTests):
    """
    Transmission's own web client (Debian's C{transmission-common}, in
    C{/usr/share/transmission/web}), unchanged, against a server that
    serves it at C{/transmission/web/}: mixed into a C{SynchronousTestCase}
    that defines C{startServer} (see L{BrowserTests}), whose C{pageURL} is
    the web client's address.
    """

    def clientRows(self) -> Dict[str, Dict]:
        """
        What the web client shows of every torrent, by name.
        """
        rows = self.browser.script("""
            return Array.from(document.querySelectorAll("#torrent_list li.torrent"),
              (li) => ({
                name: li.querySelector(".torrent_name").textContent,
                progress: li.querySelector(".torrent_progress_details").textContent,
                peers: li.querySelector(".torrent_peer_details").textContent,
                bar: li.querySelector(".torrent_progress_bar.complete").style.width,
              }));
            """)
        return {row["name"]: row for row in rows}

    def test_listAndInspector(self) -> None:
        """
        The web client lists a seeding torrent at 100 % and a stopped one at
        0 %; its inspector shows the files, the real libtorrent leecher
        connected, and the tracker.
        """
        self.assertTrue(os.path.isfile(os.path.join(TRANSMISSION_WEB, "index.html")))
        tracker = f"http://127.0.0.1:{freePort()}/announce"
        torrent, parent = self.makeTorrent(
            "album", (("a.bin", 100_000), ("sub/b.bin", 50_000)), trackers=[tracker]
        )
        seeded = self.addTorrent(torrent, parent)
        self.waitForRPC(seeded, lambda s: s["status"] == 6, "seeding")
        other, _ = self.makeTorrent("stopped.bin", (("", 50_000),))
        self.addTorrent(other, self.emptyDirectory(), paused=True)
        leecher = libtorrentLeecher(self.emptyDirectory(), torrent)
        self.addCleanup(leecher.close)
        leecher.handle.set_download_limit(10_000)
        leecher.connect("127.0.0.1", self.server.peerPort)

        self.openPage()
        rows = self.browser.waitFor(
            lambda: (lambda r: r if len(r) == 2 else None)(self.clientRows()),
            description="two torrents",
        )
        self.assertEqual(rows["album"]["bar"], "100%")
        self.assertTrue(rows["album"]["progress"].startswith("150.0 kB, uploaded"))
        self.assertEqual(rows["stopped.bin"]["progress"], "0 B of 50.0 kB (0.00%)")
        self.assertEqual(rows["stopped.bin"]["peers"], "Paused")

        self.click("#torrent_list li.torrent")
        self.click("#toolbar-inspector")
        self.click("#inspector-tab-files")
        self.browser.waitFor(
            lambda: self.browser.script(
                "return Array.from(document.querySelectorAll("
                "'#inspector_file_list .inspector_torrent_file_list_entry_name'),"
                " (e) => e.textContent)"
            )
            == ["album", "a.bin", "sub", "b.bin"],
            description="the files in the inspector",
        )
        self.click("#inspector-tab-peers")
        self.browser.waitFor(
            lambda: "127.0.0.1"
            in self.browser.script(
                "return document.getElementById('inspector_peers_list').textContent"
            ),
            timeout=20,
            description="the libtorrent peer in the inspector",
        )
        self.click("#inspector-tab-trackers")
        self.browser.waitFor(
            lambda: self.browser.script(
                "return Array.from(document.querySelectorAll("
                "'#inspector_trackers_list .tracker_host'), (e) => e.title)"
            )
            == [tracker],
            description="the tracker in the inspector",
        )
        # Nothing listens there: the announce failed, and says when.
        self.browser.waitFor(
            lambda: "Announce error: "
            in self.browser.script(
                "return document.getElementById('inspector_trackers_list')"
                ".textContent"
            ),
            timeout=20,
            description="the failed announce in the inspector",
        )
        self.assertConsoleClean()

    def test_downloadPauseRemove(self) -> None:
        """
        A torrent downloading from a real libtorrent seeder rises to 100 %
        in the web client (its polls of C{recently-active}); Pause and
        Resume on its toolbar change the state as the RPC reports it; a
        torrent removed over the RPC leaves the list (C{removed}).
        """
        torrent, parent = self.makeTorrent("download.bin", (("", 4_000_000),))
        seeder = libtorrentSeeder(parent, torrent)
        self.addCleanup(seeder.close)
        torrentId = self.addTorrent(torrent, self.emptyDirectory())
        self.openPage()
        first = self.browser.waitFor(
            lambda: self.clientRows().get("download.bin"), description="listed"
        )
        self.assertNotEqual(first["bar"], "100%")
        seeder.connect("127.0.0.1", self.server.peerPort)
        seen = {first["bar"]}

        def done():
            row = self.clientRows()["download.bin"]
            seen.add(row["bar"])
            return row["bar"] == "100%" and row["progress"].startswith(
                "4.00 MB, uploaded"
            )

        self.browser.waitFor(done, timeout=60, description="100 % and seeding")
        self.assertEqual(self.status(torrentId)["percentDone"], 1)
        self.assertIn("0%", seen)

        self.click("#torrent_list li.torrent")
        self.click("#toolbar-pause")
        self.waitForRPC(torrentId, lambda s: s["status"] == 0, "stopped")
        self.browser.waitFor(
            lambda: self.clientRows()["download.bin"]["peers"] == "Paused",
            description="paused in the list",
        )
        self.click("#toolbar-start")
        self.waitForRPC(torrentId, lambda s: s["status"] == 6, "seeding again")
        self.browser.waitFor(
            lambda: self.clientRows()["download.bin"]["peers"] != "Paused",
            description="running in the list",
        )

        self.server.rpc.call("torrent-remove", ids=[torrentId])
        self.browser.waitFor(
            lambda: self.clientRows() == {}, timeout=20, description="row gone"
        )
        self.assertConsoleClean()

    def test_addAndPreferences(self) -> None:
        """
        The add dialog shows the free space of the download dir
        (C{free-space}) and uploads a .torrent file (C{torrent-add}); the
        preferences dialog and the turtle change the session's settings
        (C{session-set}) as C{session-get} then reports them.
        """
        torrent, _ = self.makeTorrent("uploaded.bin", (("", 70_000),))
        path = os.path.join(self.base, "uploaded.torrent")
        with open(path, "wb") as f:
            f.write(torrent)
        target = self.emptyDirectory()
        self.openPage()
        self.browser.waitFor(
            lambda: self.browser.script("return $('#statusbar').is(':visible')"),
            description="the client running",
        )
        self.click("#toolbar-open")
        folder = self.browser.driver.find_element(By.ID, "add-dialog-folder-input")
        self.browser.waitFor(
            lambda: folder.get_attribute("value"), description="the download dir"
        )
        # A directory that exists (the server's own may not yet): its free
        # space is asked for once the field changes.
        folder.clear()
        folder.send_keys(target, Keys.TAB)
        self.browser.waitFor(
            lambda: "Free)"
            in self.browser.driver.find_element(By.ID, "add-dialog-folder-label").text,
            description="the free space",
        )
        self.browser.driver.find_element(By.ID, "torrent_upload_file").send_keys(path)
        self.click("#upload_confirm_button")
        [added] = self.browser.waitFor(
            lambda: self.server.rpc.call(
                "torrent-get", fields=["id", "name", "downloadDir"]
            )["torrents"],
            description="the torrent added",
        )
        self.assertEqual(
            (added["name"], added["downloadDir"].rstrip("/")), ("uploaded.bin", target)
        )
        self.browser.waitFor(
            lambda: "uploaded.bin" in self.clientRows(), description="listed"
        )

        def settings():
            return self.server.rpc.call(
                "session-get",
                fields=[
                    "speed-limit-down",
                    "speed-limit-down-enabled",
                    "speed-limit-up-enabled",
                    "alt-speed-enabled",
                ],
            )

        self.click("#prefs-button")
        self.click("#prefs-tab-speed")
        self.click("#speed-limit-down-enabled")
        self.browser.waitFor(
            lambda: settings()["speed-limit-down-enabled"],
            description="the download limit enabled",
        )
        # As a person would, once the dialog enables the field (when the
        # session says the limit is on): select its text, type over it,
        # move on.
        field = self.browser.driver.find_element(By.ID, "speed-limit-down")
        self.browser.waitFor(field.is_enabled, description="the field enabled")
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("123", Keys.TAB)
        self.browser.waitFor(
            lambda: settings()["speed-limit-down"] == 123,
            description="the download limit set",
        )
        self.click("#speed-limit-up-enabled")
        self.browser.waitFor(
            lambda: settings()["speed-limit-up-enabled"],
            description="the upload limit enabled",
        )
        self.assertEqual(
            (settings()["speed-limit-down"], field.get_attribute("value")),
            (123, "123"),
        )
        self.assertFalse(settings()["alt-speed-enabled"])
        self.browser.script("$('#prefs-dialog').dialog('close')")
        self.click("#turtle-button")
        self.browser.waitFor(
            lambda: settings()["alt-speed-enabled"], description="the turtle on"
        )
        self.assertConsoleClean()


class TransmissionWebPageTests(WebPageTests, SynchronousTestCase):
    """
    The page served by a real transmission-daemon 3.00 from
    C{TRANSMISSION_WEB_HOME} at C{/transmission/web/}.
    """

    def startServer(self, directory: str) -> ServerUnderTest:
        daemon = Transmission(directory, webHome=STATIC)
        return ServerUnderTest(
            pageURL=daemon.webURL,
            rpc=daemon.client,
            peerPort=daemon.peerPort,
            stop=daemon.stop,
        )


class TransmissionOwnWebClientTests(TransmissionWebClientTests, SynchronousTestCase):
    """
    Transmission's web client served by transmission-daemon itself: the
    reference for a server that must serve it unchanged.
    """

    def startServer(self, directory: str) -> ServerUnderTest:
        daemon = Transmission(directory, webHome=TRANSMISSION_WEB)
        return ServerUnderTest(
            pageURL=daemon.webURL,
            rpc=daemon.client,
            peerPort=daemon.peerPort,
            stop=daemon.stop,
        )

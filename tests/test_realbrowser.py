"""
The browser harness itself (L{tests.realbrowser}): it fails when the
browser is missing, it stays on 127.0.0.1, and it sees console errors.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests import realbrowser
from tests.realbrowser import Browser, MissingSoftware


class Trap:
    """
    A TCP listener on 127.0.0.1 that records the first bytes of every
    connection (a proxy that answers nothing).
    """

    def __init__(self) -> None:
        self.requests = []
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            connection.settimeout(2)
            try:
                self.requests.append(connection.recv(300))
            except OSError:
                pass
            connection.close()

    def close(self) -> None:
        self.socket.close()


class HarnessTests(SynchronousTestCase):
    """
    L{Browser} in a real headless Chromium.
    """

    def serve(self, files: dict) -> str:
        """
        Serve C{files} (name to text) over HTTP on 127.0.0.1.

        @return: the base URL.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=directory
        )
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    def test_missing(self) -> None:
        """
        A missing Chromium or driver raises L{MissingSoftware}, which fails
        a test.
        """
        self.patch(realbrowser, "CHROMEDRIVER", "/nonexistent/chromedriver")
        self.assertRaises(MissingSoftware, Browser)
        self.patch(realbrowser, "CHROMIUM", "/nonexistent/chromium")
        self.assertRaises(MissingSoftware, Browser)

    def test_staysOnLoopback(self) -> None:
        """
        L{Browser.open} refuses other addresses, and whatever a page asks
        of the world ends at the proxy on 127.0.0.1, never beyond.
        """
        trap = Trap()
        self.addCleanup(trap.close)
        browser = Browser(proxy=f"http://127.0.0.1:{trap.port}")
        self.addCleanup(browser.close)
        self.assertRaises(ValueError, browser.open, "http://192.0.2.1/")
        self.assertRaises(ValueError, browser.open, "http://localhost/")
        base = self.serve({"index.html": "<!DOCTYPE html><title>t</title>"})
        browser.open(base)
        result = browser.script(
            "return fetch('http://192.0.2.1/outside', {mode: 'no-cors'})"
            ".then(() => 'reached', (e) => 'failed')"
        )
        self.assertEqual(result, "failed")
        browser.waitFor(
            lambda: any(b"192.0.2.1/outside" in r for r in trap.requests),
            description="the request at the proxy",
        )

    def test_consoleErrors(self) -> None:
        """
        Uncaught exceptions, C{console.error} and failed loads are console
        errors; C{console.log} is not.
        """
        base = self.serve(
            {
                "index.html": '<!DOCTYPE html><link rel="icon" href="data:,">'
                '<script src="page.js"></script>',
                "page.js": "console.log('fine'); console.error('bad thing');"
                " fetch('missing.json'); setTimeout(() => { null.x; }, 0);",
            }
        )
        browser = Browser()
        self.addCleanup(browser.close)
        browser.open(base)
        errors = browser.waitFor(
            lambda: (lambda e: e if len(e) >= 3 else None)(browser.consoleErrors()),
            description="three errors",
        )
        self.assertEqual(len(errors), 3, errors)
        text = "\n".join(errors)
        self.assertIn("bad thing", text)
        self.assertIn("missing.json", text)
        self.assertIn("TypeError", text)
        self.assertNotIn("fine", text)
        self.assertEqual(browser.consoleErrors(allowed=lambda e: True), [])

"""
A real browser for tests of web pages on 127.0.0.1: headless Chromium
(Debian's C{chromium} and C{chromium-driver}) driven by C{selenium}.

The browser gets a fresh profile, no background networking, a proxy that
does not exist for every address but loopback and a resolver that finds
no name, so that nothing it does can leave 127.0.0.1; L{Browser.open}
refuses any other address.  Everything the page writes to the console
and every failed load is collected (L{Browser.consoleErrors}) so that
tests can assert there is none.  A missing browser, driver or selenium
raises L{MissingSoftware}: tests fail, never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit

from tests.realpeers import MissingSoftware

__all__ = ["CHROMIUM", "CHROMEDRIVER", "Browser", "MissingSoftware"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Anything Chromium would fetch from elsewhere goes to this proxy, on a
#: loopback port where nothing listens (the discard port), and fails there;
#: loopback addresses bypass a proxy in Chromium.
_DEAD_PROXY = "http://127.0.0.1:9"

_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,"
    "DialMediaRouteProvider,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def _requireSelenium():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise MissingSoftware(
            "selenium is not installed (pip install selenium)"
        ) from None
    return webdriver, Service


class Browser:
    """
    One headless Chromium with its own profile directory.

    @ivar driver: the selenium C{WebDriver}, for anything not wrapped here.
    @ivar entries: every console and network log entry seen so far, as
        chromedriver reports them (C{level}, C{source}, C{message}).
    """

    def __init__(
        self, width: int = 1280, height: int = 900, proxy: str = _DEAD_PROXY
    ) -> None:
        """
        Start the browser.

        @param width: the window's width in CSS pixels.
        @param height: the window's height in CSS pixels.
        @param proxy: where every request for an address other than loopback
            goes (by default nowhere; Chromium tries Google and its search
            engine in the background whatever flags it gets).
        @raise MissingSoftware: when Chromium, its driver or selenium is
            missing.
        """
        for path, package in (
            (CHROMIUM, "chromium"),
            (CHROMEDRIVER, "chromium-driver"),
        ):
            if not os.access(path, os.X_OK):
                raise MissingSoftware(
                    f"{path} is missing (apt-get install -y {package})"
                )
        webdriver, Service = _requireSelenium()
        self.entries: List[Dict[str, Any]] = []
        self._profile = tempfile.mkdtemp(prefix="btorrent-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in _FLAGS:
            options.add_argument(flag)
        if urlsplit(proxy).hostname != "127.0.0.1":
            raise ValueError(f"the proxy must be on 127.0.0.1: {proxy!r}")
        options.add_argument(f"--proxy-server={proxy}")
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An alert must stay open so that a test can see it (the default
        # would dismiss it and fail the next command instead).
        options.unhandled_prompt_behavior = "ignore"
        service = Service(CHROMEDRIVER, log_output=subprocess.DEVNULL)
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except Exception:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(30)

    def emulatePhone(self, width: int = 390, height: int = 844) -> None:
        """
        Emulate a phone's screen: a viewport of C{width} x C{height} CSS
        pixels at 3 device pixels each, with mobile layout rules (the
        page's C{<meta name=viewport>} is honoured; without it a phone
        lays a page out 980 pixels wide).
        """
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": height,
                "deviceScaleFactor": 3,
                "mobile": True,
            },
        )
        self.driver.execute_cdp_cmd(
            "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}
        )

    def open(self, url: str) -> None:
        """
        Load C{url}, which must be on 127.0.0.1.

        @raise ValueError: for any other address.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname != "127.0.0.1":
            raise ValueError(f"refusing to browse beyond 127.0.0.1: {url!r}")
        self.driver.get(url)

    def script(self, source: str, *arguments: Any) -> Any:
        """
        Run JavaScript in the page (C{return ...} gives its value back).
        """
        return self.driver.execute_script(source, *arguments)

    def log(self) -> List[Dict[str, Any]]:
        """
        Every console and network log entry so far (chromedriver hands each
        entry out once; they are kept here).
        """
        self.entries.extend(self.driver.get_log("browser"))
        return self.entries

    def consoleErrors(
        self, allowed: Callable[[Dict[str, Any]], bool] = None
    ) -> List[str]:
        """
        The console errors so far: uncaught exceptions, C{console.error},
        failed loads, security (CSP) violations.

        @param allowed: entries for which this returns true are left out
            (for a failure the test itself caused on purpose).
        @return: their texts.
        """
        return [
            entry["message"]
            for entry in self.log()
            if entry["level"] == "SEVERE" and not (allowed and allowed(entry))
        ]

    def alertText(self) -> Optional[str]:
        """
        The text of an open alert, confirm or prompt, or C{None}.
        """
        from selenium.common.exceptions import NoAlertPresentException

        try:
            return self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    def waitFor(
        self,
        condition: Callable[[], Any],
        timeout: float = 15.0,
        description: str = "condition",
    ) -> Any:
        """
        Poll C{condition()} until it returns something true.

        @return: that value.
        @raise AssertionError: after C{timeout} seconds, naming
            C{description} and the last value seen.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {description}; "
                    f"last value: {value!r}"
                )
            time.sleep(0.1)

    def close(self) -> None:
        """
        Quit the browser and remove its profile.
        """
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

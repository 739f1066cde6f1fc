"""
The pages the daemon serves beside its RPC: btorrent's own web page at
C{/} (shipped in C{btorrent/control/static}), and Transmission's web client
at C{/transmission/web/} when it is installed (never copied into the
project).
"""

from __future__ import annotations

import os
from typing import Optional

from twisted.web.resource import Resource
from twisted.web.static import File

__all__ = ["STATIC", "TRANSMISSION_WEB", "installPages", "transmissionWebHome"]

#: btorrent's own page: plain HTML, CSS and JavaScript.
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: Where Debian's C{transmission-common} installs Transmission's web client.
TRANSMISSION_WEB = "/usr/share/transmission/web"

#: Headers every page is served with: no sniffing, no framing by others.
_HEADERS = (
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Content-Security-Policy", b"frame-ancestors 'none'"),
    (b"Cache-Control", b"no-cache"),
)


class _Page(File):
    """
    A static file or directory, with L{_HEADERS}.
    """

    def render_GET(self, request):
        for name, value in _HEADERS:
            request.setHeader(name, value)
        return super().render_GET(request)

    def directoryListing(self):
        return Resource.getChild(self, b"", None)


_Page.contentTypes = dict(File.contentTypes)
_Page.contentTypes.update(
    {".js": "application/javascript", ".css": "text/css", ".html": "text/html"}
)


def transmissionWebHome(configured: Optional[str] = None) -> Optional[str]:
    """
    The directory of Transmission's web client: C{configured}, else
    C{$TRANSMISSION_WEB_HOME} (as Transmission reads it), else Debian's, if
    it holds an C{index.html}.
    """
    for candidate in (
        configured,
        os.environ.get("TRANSMISSION_WEB_HOME"),
        TRANSMISSION_WEB,
    ):
        if candidate and os.path.isfile(os.path.join(candidate, "index.html")):
            return candidate
    return None


def installPages(root, webHome: Optional[str] = None) -> Optional[str]:
    """
    Hang btorrent's page on C{root} (the control site's root) at C{/}, and
    Transmission's web client at C{/transmission/web/} if one is found.

    @return: the directory of Transmission's web client served, or C{None}.
    """
    root.putChild(b"", _Page(os.path.join(STATIC, "index.html")))
    for name in sorted(os.listdir(STATIC)):
        if name != "index.html":
            root.putChild(name.encode("utf-8"), _Page(os.path.join(STATIC, name)))
    home = transmissionWebHome(webHome)
    if home is not None:
        transmission = root.getStaticEntity(b"transmission")
        if transmission is not None:
            transmission.putChild(b"web", _Page(home))
    return home

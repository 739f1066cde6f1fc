"""
The twistd plugin: C{twistd btorrent --torrent x.torrent}.
"""

from twisted.application.service import ServiceMaker

btorrent = ServiceMaker(
    "btorrent",
    "btorrent.daemon.tap",
    "A BitTorrent client: download and seed torrents.",
    "btorrent",
)

btorrentTracker = ServiceMaker(
    "btorrent-tracker",
    "btorrent.trackerserver.tap",
    "A BitTorrent tracker: HTTP and UDP announce and scrape.",
    "btorrent-tracker",
)

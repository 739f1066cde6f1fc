"""
Tracker clients: the announce codecs (HTTP and UDP), the HTTP and UDP
clients, and the Announcer service that walks a torrent's tiers.
"""

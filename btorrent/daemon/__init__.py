"""
The daemon: the session that holds every torrent, its persistence, the
control plane, and C{twistd btorrent}'s options (L{btorrent.daemon.tap}).
"""

"""
btorrent: a BitTorrent client daemon on Twisted.
"""

__version__ = "0.1.0"

#: The client identifier in our peer ids (Azureus style, BEP 20).
PEER_ID_PREFIX = b"-BT0100-"

"""
The BitTorrent DHT (BEP 5): the KRPC codec (L{btorrent.dht.krpc}), the
routing table (L{btorrent.dht.routing}), the transport-free node
(L{btorrent.dht.node}) and its Twisted adapter (L{btorrent.dht.protocol}).

Only L{btorrent.dht.protocol} imports C{twisted.internet}.
"""

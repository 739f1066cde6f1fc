"""
The tracker server (HTTP and UDP announce and scrape) behind C{twistd
btorrent-tracker}: its swarm store, its protocols and its options.
"""

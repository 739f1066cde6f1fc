"""
Tracker clients (HTTP and UDP), their codecs, the Announcer service and the
tracker server.
"""

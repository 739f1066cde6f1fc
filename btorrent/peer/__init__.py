"""
One connection to a peer: the sans-IO connection state machine, its
extensions, and the Twisted protocol and factories that feed it.
"""

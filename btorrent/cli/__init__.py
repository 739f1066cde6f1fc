"""
The C{btorrent} command line: C{create}, C{info}, C{download} and the
remote commands that drive a running daemon.
"""

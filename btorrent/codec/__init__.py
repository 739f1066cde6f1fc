"""
Codecs: bytes to values and back, with no I/O and no Twisted.

C{bencode} (the only importer of bcoding), C{metainfo} (.torrent files,
safe paths), C{wire} (the peer wire's messages), C{bitfield}.
"""

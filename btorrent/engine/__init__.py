"""
The engine of a torrent: its lifecycle (L{btorrent.engine.torrent}), the
policies that download and serve it (picker, requests, assembly, uploads,
choking, smart ban), its storage and its fast-resume data.
"""

"""
The control plane: the session API (L{btorrent.control.api}) and what
speaks it to the outside: the Transmission RPC, the web page, /metrics.
Nothing here knows the engine; the daemon's session implements the API.
"""

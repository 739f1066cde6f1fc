"""
Small pure helpers every layer may use: rate meters, the session's
heartbeat, event sources.  Nothing here imports C{twisted.internet}.
"""

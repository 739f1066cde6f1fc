"""
Default pid and log file names of a twistd plugin.

Daemonised, twistd writes C{twistd.pid} and C{twistd.log} in its directory
whatever the plugin: the tracker server and the client started in one
directory would share them (the second refuses to start, "Another twistd
server is running").  L{useOwnFileNames}, called from a plugin's
C{Options.postOptions}, gives them the plugin's own names instead, unless
the user passed C{--pidfile} or C{--logfile}.

This works because twistd parses its own options (those before the plugin
name) first, then the plugin's options, whose C{parent} is then twistd's
L{ServerOptions}; twistd's own C{postOptions} (which makes the pid file
path absolute) and everything that reads the two names (the logger, the
pid file check and write) come after.  An option the user did not pass
still holds the very default object twistd's option parser put there
(C{Options.defaults}); one the user passed, even C{--pidfile twistd.pid},
is another string object.  This module imports nothing from Twisted.
"""

from __future__ import annotations

__all__ = ["useOwnFileNames"]


def _notGiven(options, name: str) -> bool:
    """
    Whether C{options[name]} is still twistd's default: present in its
    defaults and the very same object.
    """
    return name in options.defaults and options.get(name) is options.defaults[name]


def useOwnFileNames(pluginOptions, name: str) -> None:
    """
    Make twistd use C{NAME.pid} and, daemonised, C{NAME.log} instead of
    C{twistd.pid} and C{twistd.log}, unless the user chose them.

    With C{-n} and no C{--logfile}, twistd logs to standard output: that is
    kept.  With C{--syslog}, the log file is not used.  Does nothing when
    C{pluginOptions} was not parsed by twistd (no C{parent}), or on a
    platform whose twistd has no pid file.

    @param pluginOptions: the plugin's L{twisted.python.usage.Options},
        during its C{postOptions}.
    @param name: the plugin's name, e.g. C{"btorrent-tracker"}.
    """
    server = getattr(pluginOptions, "parent", None)
    if server is None:
        return
    if _notGiven(server, "pidfile") and server.get("pidfile"):
        server["pidfile"] = f"{name}.pid"
    daemon = not server.get("nodaemon", False)
    if daemon and not server.get("syslog", False) and _notGiven(server, "logfile"):
        server["logfile"] = f"{name}.log"

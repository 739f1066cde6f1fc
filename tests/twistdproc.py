"""
Run C{twistd} plugins and the C{btorrent} command of this checkout as
subprocesses in tests and benchmarks.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

#: The repository root: put on C{PYTHONPATH} so that C{twisted/plugins} of
#: this checkout is found whatever way btorrent was installed.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compileCheckout() -> None:
    """
    Write the bytecode of this checkout's C{btorrent} modules, as
    C{pip install} does for an installed copy, so that the subprocesses a
    benchmark times load it rather than compile every module at each start.
    (Python writes it itself as it imports, unless told not to: this machine
    sets C{PYTHONDONTWRITEBYTECODE=1}, and each C{btorrent download} of a 1
    GiB benchmark then spent about 0.3 CPU seconds compiling.)
    """
    import compileall

    compileall.compile_dir(os.path.join(REPOSITORY, "btorrent"), quiet=1)


def repositoryEnvironment() -> dict:
    """
    The environment for a subprocess that must run this checkout's code.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPOSITORY] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    return env


def twistdCommand(
    plugin: str, *arguments: str, logFile: str, pidFile: Optional[str] = None
) -> List[str]:
    """
    The command line of C{twistd PLUGIN ARGUMENTS}: in the foreground
    (C{-n}, no pid file) unless C{pidFile} is given, in which case twistd
    daemonizes and writes it.  For C{btorrent}, without C{--rpc-port} the
    RPC is off (C{--rpc-port 0}: tests never take 9091), without
    C{--dht-bootstrap} the DHT is off (C{--no-dht}: tests never reach the
    public routers), and without C{--state-dir} the state goes beside the
    log file.
    """
    arguments = list(arguments)
    if plugin == "btorrent":
        # Tests never bind the RPC's default port (9091) unless they ask,
        # and never use the user's state dir.
        if not any(a.startswith("--rpc-port") for a in arguments):
            arguments += ["--rpc-port", "0"]
        if not any(a.startswith("--dht-bootstrap") for a in arguments):
            # Never the public DHT routers from a test.
            arguments.append("--no-dht")
        if not any(a.startswith("--state-dir") or a == "-s" for a in arguments):
            stateDir = os.path.join(os.path.dirname(os.path.abspath(logFile)), "state")
            arguments += ["--state-dir", stateDir]
    command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    if pidFile is None:
        command += ["-n", "--pidfile="]
    else:
        command += ["--pidfile", pidFile]
    return command + ["--logfile", logFile, plugin, *arguments]


def downloadCommand() -> List[str]:
    """
    C{btorrent download}, run as C{python -m btorrent.cli.main download} so that
    the interpreter running the tests runs it (with
    L{repositoryEnvironment}, this checkout's code).
    """
    return [sys.executable, "-m", "btorrent.cli.main", "download", "--no-dht"]

"""
Tests for C{etc/btorrent.service} (the systemd unit a package ships) and
C{etc/btorrent.conf.example}: the unit runs the empty daemon as a system
user with its state dir, and its C{ExecStart} parses with twistd's and
btorrent's own options; the example names exactly btorrent's options.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from typing import Dict, List, Tuple

from twisted.python import usage
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from btorrent.daemon import tap
from tests.twistdproc import REPOSITORY

UNIT = os.path.join(REPOSITORY, "etc", "btorrent.service")
EXAMPLE = os.path.join(REPOSITORY, "etc", "btorrent.conf.example")
STATE = "/var/lib/btorrent"


def readUnit(path: str) -> Dict[str, List[Tuple[str, str]]]:
    """
    A systemd unit file as C{{section: [(key, value), ...]}}: comment lines
    skipped, a line ending in a backslash continued on the next.
    """
    sections: Dict[str, List[Tuple[str, str]]] = {}
    current = None
    pending = ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and line.lstrip().startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            line = line.strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                sections.setdefault(current, [])
                continue
            key, sep, value = line.partition("=")
            if not sep or current is None:
                raise ValueError(f"not a unit file line: {line!r}")
            sections[current].append((key.strip(), value.strip()))
    return sections


def value(section: List[Tuple[str, str]], key: str) -> str:
    """
    The one value of C{key} in C{section}.
    """
    values = [v for k, v in section if k == key]
    if len(values) != 1:
        raise AssertionError(f"{key}: {values!r}")
    return values[0]


class ServiceUnitTests(SynchronousTestCase):
    """
    The unit runs the empty daemon as a package would ship it.
    """

    def setUp(self) -> None:
        self.unit = readUnit(UNIT)
        self.service = self.unit["Service"]
        self.argv = shlex.split(value(self.service, "ExecStart"))

    def test_service(self) -> None:
        """
        A system user, systemd's state directory as its working directory,
        restarted on failure, started at boot.
        """
        self.assertEqual(value(self.service, "User"), "btorrent")
        self.assertEqual(value(self.service, "Group"), "btorrent")
        self.assertEqual(value(self.service, "StateDirectory"), "btorrent")
        self.assertEqual(value(self.service, "WorkingDirectory"), STATE)
        self.assertEqual(value(self.service, "Type"), "simple")
        self.assertEqual(value(self.service, "Restart"), "on-failure")
        self.assertEqual(value(self.unit["Install"], "WantedBy"), "multi-user.target")

    def test_execStart(self) -> None:
        """
        C{ExecStart} is twistd in the foreground without a pid file,
        running btorrent with no torrent, its state in the state directory
        and its downloads under it; it parses with twistd's options and
        btorrent's (L{tap.Options}; C{/var/lib/btorrent} stands for a
        temporary directory, which the options check is writable).
        """
        self.assertTrue(os.path.isabs(self.argv[0]), self.argv[0])
        self.assertEqual(os.path.basename(self.argv[0]), "twistd")
        self.assertNotIn("--torrent", self.argv)
        self.assertNotIn("-t", self.argv)
        self.assertFalse([a for a in self.argv if a.endswith(".torrent")])
        base = os.path.abspath(self.mktemp())
        arguments = [a.replace(STATE, base) for a in self.argv[1:]]
        options = ServerOptions()
        try:
            options.parseOptions(arguments)
        except (usage.UsageError, SystemExit) as e:
            self.fail(f"ExecStart does not parse: {e!r}")
        self.assertTrue(options["nodaemon"])
        self.assertEqual(options["pidfile"], "")
        self.assertEqual(options.subCommand, "btorrent")
        btorrent = options.subOptions
        self.assertIsInstance(btorrent, tap.Options)
        self.assertEqual(btorrent["state-dir"], base)
        self.assertEqual(btorrent["download-dir"], os.path.join(base, "downloads"))
        self.assertEqual(btorrent["metainfos"], [])

    def test_reload(self) -> None:
        """
        C{systemctl reload} sends SIGUSR1, the signal on which the daemon
        makes every torrent announce now.
        """
        self.assertEqual(value(self.service, "ExecReload"), "/bin/kill -USR1 $MAINPID")
        self.assertEqual(
            tap.ReannounceOnSignal(None, None).signalNumber, signal.SIGUSR1
        )

    def test_unitOptionsDocumented(self) -> None:
        """
        The unit's btorrent options are ones the example explains.
        """
        with open(EXAMPLE, encoding="utf-8") as f:
            example = f.read()
        after = self.argv[self.argv.index("btorrent") + 1 :]
        for argument in after:
            if argument.startswith("--"):
                self.assertRegex(example, rf"(?m)^#\s+(-\w, )?{re.escape(argument)} ")


class ExampleTests(SynchronousTestCase):
    """
    C{etc/btorrent.conf.example} explains exactly btorrent's options.
    """

    def test_sameOptions(self) -> None:
        """
        Every long option the example names is one of L{tap.Options}, and
        every one of L{tap.Options} is in the example.
        """
        with open(EXAMPLE, encoding="utf-8") as f:
            example = f.read()
        documented = set(
            re.findall(r"^#\s+(?:-\w, )?--([\w-]+)", example, re.MULTILINE)
        )
        options = tap.Options()
        known = {p[0] for p in options.optParameters}
        known |= {f[0] for f in options.optFlags}
        known |= {
            name[4:].replace("_", "-")
            for name in dir(options)
            if name.startswith("opt_") and len(name) > 5
        }
        known.discard("help")
        self.assertEqual(sorted(documented - known), [])
        self.assertEqual(sorted(known - documented), [])

"""
Tests for C{tools/test.py}, the README's test command: it installs the
Debian packages the tests need (or says in one line why it cannot), a
virtual environment, and runs pytest; for C{.ci/run} running exactly that
line; and for the rule that a test never skips.

The script runs as a subprocess with a C{PATH} that hides the real
programs: a directory holding only a fake C{apt-get} (which records its
arguments and, when told to, "installs" by creating the programs).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.twistdproc import REPOSITORY

SCRIPT = os.path.join(REPOSITORY, "tools", "test.py")


def loadScript():
    """
    C{tools/test.py} as a module (it is not in a package).
    """
    spec = importlib.util.spec_from_file_location("btorrent_tools_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = loadScript()

ALL = " ".join(package for package, program in script.DEBIAN_PACKAGES)

#: Programs the tests run that pip installs into the environment.
PIP_PROGRAMS = {"twistd", "btorrent"}


def writeExecutable(path: str, text: str) -> None:
    """
    Write an executable file.
    """
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


class Sandbox:
    """
    A directory for one run of the script: C{bin} (the whole C{PATH}) with
    a fake C{apt-get}, and the log of its calls.
    """

    def __init__(self, case: SynchronousTestCase, aptGet: str = "record") -> None:
        """
        @param aptGet: C{"record"}: succeed doing nothing; C{"install"}:
            create every program; C{"fail"}: exit 100 on C{install};
            C{"none"}: no apt-get at all.
        """
        self.base = tempfile.mkdtemp(prefix="btorrent-testscript-")
        case.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.bin = os.path.join(self.base, "bin")
        os.mkdir(self.bin)
        os.chmod(self.bin, 0o755)
        self.log = os.path.join(self.base, "apt.log")
        if aptGet == "none":
            return
        install = ""
        if aptGet == "install":
            install = "".join(
                f"printf '#!/bin/sh\\n' > {self.bin}/{program}; "
                f"/bin/chmod 755 {self.bin}/{program}; "
                for package, program in script.DEBIAN_PACKAGES
            )
        failure = "exit 100" if aptGet == "fail" else "exit 0"
        writeExecutable(
            os.path.join(self.bin, "apt-get"),
            "#!/bin/sh\n"
            f'echo "$*" >> {self.log}\n'
            f'if [ "$1" = install ]; then {install} {failure}; fi\n'
            "exit 0\n",
        )

    def calls(self) -> list:
        """
        The argument lists apt-get was called with, one string each.
        """
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def run(self, *arguments: str, python=None, user=None, env=None):
        """
        Run the script with C{PATH} = C{bin} only.

        @param user: run as this uid (and gid), through setpriv.
        @return: the C{CompletedProcess}, output as text.
        """
        environment = {"PATH": self.bin, "HOME": self.base}
        environment.update(env or {})
        command = [python or sys.executable, SCRIPT, *arguments]
        if user is not None:
            command = [
                "/usr/bin/setpriv",
                f"--reuid={user}",
                f"--regid={user}",
                "--clear-groups",
            ] + command
        return subprocess.run(
            command,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )


class MissingPackagesTests(SynchronousTestCase):
    """
    With the programs missing from C{PATH}, the script installs their
    packages as root, or stops with one line and exit status 2.
    """

    def assertOneLine(self, result, line: str) -> None:
        """
        The script failed with exit status 2 and exactly C{line} on
        stderr, and no traceback anywhere.
        """
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stderr, line + "\n")
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_notRoot(self):
        """
        Not root and packages missing: one line naming the packages and
        the command that installs them; apt-get is never called.
        """
        sandbox = Sandbox(self)
        # The script must be readable by that user: a copy under /tmp (the
        # checkout may be in root's home), run by Debian's python3 (the
        # interpreter running these tests may be too).
        copy = os.path.join(sandbox.base, "tools")
        os.mkdir(copy)
        shutil.copy(SCRIPT, copy)
        os.chmod(copy, 0o755)
        os.chmod(os.path.join(copy, "test.py"), 0o644)
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
        self.assertIsNotNone(python, "Debian's /usr/bin/python3 is missing")
        command = [
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            os.path.join(copy, "test.py"),
        ]
        result = subprocess.run(
            command,
            env={"PATH": sandbox.bin, "HOME": sandbox.base},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertOneLine(
            result,
            f"tools/test.py: the tests need the Debian packages {ALL}: run this "
            f"as root to install them, or first: sudo apt-get install -y {ALL}",
        )
        self.assertEqual(sandbox.calls(), [])

    def test_noAptGet(self):
        """
        Without apt-get: one line saying so.
        """
        sandbox = Sandbox(self, aptGet="none")
        self.assertOneLine(
            sandbox.run(),
            f"tools/test.py: the tests need the Debian packages {ALL}, and there "
            f"is no apt-get here: install them (or their programs) by hand",
        )

    def test_aptGetFails(self):
        """
        apt-get update, then apt-get install of every missing package; its
        failure is one line with its exit status.
        """
        sandbox = Sandbox(self, aptGet="fail")
        result = sandbox.run()
        self.assertOneLine(
            result,
            f"tools/test.py: apt-get install failed (exit status 100); the tests "
            f"need: {ALL}",
        )
        self.assertEqual(sandbox.calls(), ["update -qq", f"install -y -qq {ALL}"])

    def test_stillMissing(self):
        """
        apt-get succeeded but the programs are still not on C{PATH}: one
        line naming them.
        """
        sandbox = Sandbox(self, aptGet="record")
        self.assertOneLine(
            sandbox.run(),
            f"tools/test.py: still missing after apt-get install -y {ALL}: {ALL}",
        )

    def test_installsThenRuns(self):
        """
        apt-get provides the programs; the environment (already installed
        for these packaging files: its stamp matches) is reused; pytest
        runs in it with its C{bin} first on C{PATH}, and its exit status is
        the script's.
        """
        sandbox = Sandbox(self, aptGet="install")
        venv = os.path.join(sandbox.base, "venv")
        os.makedirs(os.path.join(venv, "bin"))
        python = script.environmentPython(venv)
        # This interpreter, whatever it is (itself in a virtual environment
        # or not), stands for the environment's.
        writeExecutable(python, f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        with open(os.path.join(venv, "btorrent-install.stamp"), "w") as f:
            f.write(script.installStamp(REPOSITORY, python) + "\n")
        tests = os.path.join(sandbox.base, "check")
        os.mkdir(tests)
        with open(os.path.join(tests, "test_environment.py"), "w") as f:
            f.write(
                "import os\n"
                "def test_environment():\n"
                f"    assert os.environ['PATH'].split(os.pathsep)[0] == "
                f"{os.path.join(venv, 'bin')!r}\n"
                f"    assert os.environ['VIRTUAL_ENV'] == {venv!r}\n"
                f"    assert os.getcwd() == {REPOSITORY!r}\n"
                "def test_fails():\n"
                "    assert os.environ.get('FAIL') != '1'\n"
            )
        arguments = (tests, "-q", "-p", "no:cacheprovider", "--rootdir", tests)
        env = {"BTORRENT_VENV": venv}
        result = sandbox.run(*arguments, env=env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(
            f"tools/test.py: installing the Debian packages {ALL}\n", result.stdout
        )
        self.assertNotIn("installing btorrent", result.stdout)
        self.assertRegex(result.stdout, r"\b2 passed\b")
        self.assertEqual(sandbox.calls(), ["update -qq", f"install -y -qq {ALL}"])
        # Everything is there now: apt-get is not called again; a failing
        # test fails the script.
        result = sandbox.run(*arguments, env=dict(env, FAIL="1"))
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"\b1 failed, 1 passed\b")
        self.assertEqual(len(sandbox.calls()), 2)

    def test_stamp(self):
        """
        The stamp changes with the packaging files, the checkout's path and
        the interpreter, so the environment is installed again then.
        """
        base = self.mktemp()
        os.makedirs(base)
        for name in ("setup.py", "pyproject.toml"):
            with open(os.path.join(base, name), "w") as f:
                f.write("one\n")
        first = script.installStamp(base, "/venv/bin/python")
        self.assertEqual(first, script.installStamp(base, "/venv/bin/python"))
        self.assertNotEqual(first, script.installStamp(base, "/other/bin/python"))
        with open(os.path.join(base, "setup.py"), "a") as f:
            f.write("two\n")
        self.assertNotEqual(first, script.installStamp(base, "/venv/bin/python"))


class PackageListTests(SynchronousTestCase):
    """
    The script's Debian packages cover every program the tests run.
    """

    def test_everyProgramCovered(self):
        """
        Every program the tests look up on C{PATH} or run from
        C{/usr/bin} is one of the script's packages' programs (or one pip
        installs).
        """
        programs = {program for package, program in script.DEBIAN_PACKAGES}
        used = set()
        patterns = [
            r"shutil\.which\(\s*\"([\w.-]+)\"",
            r"_require\(\s*\"([\w.-]+)\"",
            r"\"/usr/bin/([\w.-]+)\"",
            r"^\s*\[?\s*\"(opentracker|aria2c|mktorrent|transmission-[\w-]+)\"",
        ]
        testsDir = os.path.join(REPOSITORY, "tests")
        for name in sorted(os.listdir(testsDir)):
            if not name.endswith(".py") or name == os.path.basename(__file__):
                continue
            with open(os.path.join(testsDir, name), encoding="utf-8") as f:
                text = f.read()
            for pattern in patterns:
                for match in re.finditer(pattern, text, re.MULTILINE):
                    used.add((match.group(1), name))
        self.assertTrue(used)
        uncovered = sorted(
            (program, name)
            for program, name in used
            if program not in programs | PIP_PROGRAMS | {"python3", "setpriv"}
        )
        self.assertEqual(uncovered, [])
        for program in ("opentracker", "aria2c", "mktorrent", "chromium"):
            self.assertIn(program, {p for p, n in used})

    def test_packages(self):
        """
        The packages are the ones C{shared/peers.md} names.
        """
        self.assertEqual(
            ALL,
            "opentracker aria2 transmission-daemon transmission-cli mktorrent "
            "chromium chromium-driver",
        )


class DocumentedCommandTests(SynchronousTestCase):
    """
    The README's test command is the one C{.ci/run} runs.
    """

    def test_ciRunsReadmeLine(self):
        """
        README.rst shows C{python3 tools/test.py} as its test command, and
        C{.ci/run} has exactly that line (and no other pytest run or
        apt-get of its own).
        """
        with open(os.path.join(REPOSITORY, "README.rst"), encoding="utf-8") as f:
            readme = f.read()
        with open(os.path.join(REPOSITORY, ".ci", "run"), encoding="utf-8") as f:
            ci = f.read()
        self.assertIn("\n    python3 tools/test.py\n", readme)
        self.assertIn("\npython3 tools/test.py\n", ci)
        self.assertNotIn("-m pytest", ci)
        self.assertNotIn("apt-get install", ci)
        self.assertTrue(os.stat(os.path.join(REPOSITORY, ".ci", "run")).st_mode & 0o111)

    def test_readmeFirstCommands(self):
        """
        README.rst opens with the two commands: install and run the daemon
        in a virtual environment, and the test command.
        """
        with open(os.path.join(REPOSITORY, "README.rst"), encoding="utf-8") as f:
            readme = f.read()
        blocks = re.findall(r"::\n\n((?:    .*\n)+)", readme)
        self.assertEqual(
            [b.strip() for b in blocks[:2]],
            [
                "python3 -m venv ~/.btorrent && ~/.btorrent/bin/pip install . "
                "&& ~/.btorrent/bin/twistd -n btorrent",
                "python3 tools/test.py",
            ],
        )
        for needed in ("kill $(cat btorrent.pid)", "--pidfile=", "^C"):
            self.assertIn(needed, readme)


class NoSkipTests(SynchronousTestCase):
    """
    A test never skips: none is written to, and one that does fails.
    """

    def test_noSkipInSources(self):
        """
        No test module skips: no C{skipTest}, C{SkipTest}, C{pytest.skip},
        C{importorskip}, C{skipIf}/C{skipUnless}, C{mark.skip} or trial
        C{skip} attribute.
        """
        pattern = re.compile(
            r"skipTest|SkipTest|pytest\.skip|importorskip|skipIf|skipUnless|"
            r"mark\.skip|^\s*skip\s*="
        )
        # This file and the hook name what they look for.
        exempt = {
            os.path.abspath(__file__),
            os.path.join(REPOSITORY, "tests", "conftest.py"),
        }
        found = []
        for directory in ("tests", "benchmarks"):
            root = os.path.join(REPOSITORY, directory)
            for dirpath, _dirnames, filenames in os.walk(root):
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    if not name.endswith(".py") or path in exempt:
                        continue
                    with open(path, encoding="utf-8") as f:
                        for number, line in enumerate(f, 1):
                            if pattern.search(line):
                                found.append(f"{path}:{number}: {line.strip()}")
        self.assertEqual(found, [])

    def test_skipFails(self):
        """
        With C{tests/conftest.py}, a test that skips (trial's C{skipTest}
        and C{skip} attribute, C{pytest.skip}, C{importorskip}) fails,
        naming its reason.
        """
        base = self.mktemp()
        os.makedirs(base)
        path = os.path.join(base, "test_skips.py")
        with open(path, "w") as f:
            f.write(
                "import pytest\n"
                "from twisted.trial.unittest import SynchronousTestCase\n"
                "class T(SynchronousTestCase):\n"
                "    def test_skipTest(self):\n"
                "        self.skipTest('no opentracker')\n"
                "    def test_attribute(self):\n"
                "        pass\n"
                "    test_attribute.skip = 'no aria2c'\n"
                "def test_pytestSkip():\n"
                "    pytest.skip('no mktorrent')\n"
                "def test_importorskip():\n"
                "    pytest.importorskip('no_such_module_btorrent')\n"
                "def test_passes():\n"
                "    pass\n"
            )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.conftest",
                "-p",
                "no:cacheprovider",
                "-q",
                "--rootdir",
                base,
                path,
            ],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout, r"\b4 failed, 1 passed\b")
        self.assertNotIn("skipped", result.stdout.splitlines()[-1])
        for reason in ("no opentracker", "no aria2c", "no mktorrent"):
            self.assertIn(
                "skipped, and a test never skips here (tests/conftest.py): ",
                result.stdout,
            )
            self.assertIn(reason, result.stdout)


class OptionTrapTests(SynchronousTestCase):
    """
    The rule for twistd's and btorrent's options, with the letters that
    mean something else on each side of C{btorrent}, is in
    C{twistd btorrent --help} and the README, and is true.
    """

    def dirs(self) -> list:
        """
        btorrent options for a state and a download dir of this test.
        """
        base = os.path.abspath(self.mktemp())
        return ["--state-dir", os.path.join(base, "s"), "--download-dir", base]

    def test_profileTrap(self):
        """
        C{-p} before C{btorrent} is twistd's profiler output file; after it,
        btorrent's peer port.
        """
        from twisted.scripts.twistd import ServerOptions

        before = ServerOptions()
        before.parseOptions(["-p", "22900", "btorrent", *self.dirs()])
        self.assertEqual(before["profile"], "22900")
        self.assertEqual(before.subOptions["port"], 51413)
        after = ServerOptions()
        after.parseOptions(["btorrent", "-p", "22900", *self.dirs()])
        self.assertIsNone(after["profile"])
        self.assertEqual(after.subOptions["port"], 22900)

    def test_directoryTrap(self):
        """
        C{-d} before C{btorrent} is twistd's run directory; after it,
        btorrent's download dir.
        """
        from twisted.scripts.twistd import ServerOptions

        base = os.path.abspath(self.mktemp())
        options = ServerOptions()
        options.parseOptions(
            ["-d", "/srv", "btorrent", "-s", os.path.join(base, "s"), "-d", base]
        )
        self.assertEqual(options["rundir"], "/srv")
        self.assertEqual(options.subOptions["download-dir"], base)

    def test_help(self):
        """
        C{twistd btorrent --help} states the rule and the traps.
        """
        from tests.twistdproc import repositoryEnvironment

        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "btorrent",
                "--help",
            ],
            env=repositoryEnvironment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        text = " ".join(result.stdout.split())
        for phrase in (
            "Options before 'btorrent' are twistd's (-n foreground, --pidfile, "
            "--logfile), options after it are btorrent's: twistd -n --pidfile= "
            "btorrent -p 51413 -d ~/Downloads.",
            "there -p is twistd's --profile (it runs the profiler and writes its "
            "results to a file named after the argument), -d its --rundir (the "
            "directory twistd changes to), -s its --source (an application file) "
            "and --debug runs the Python debugger.",
        ):
            self.assertIn(phrase, text)

    def test_readme(self):
        """
        The README says it too.
        """
        with open(os.path.join(REPOSITORY, "README.rst"), encoding="utf-8") as f:
            readme = " ".join(f.read().split())
        for phrase in (
            "options before ``btorrent`` are twistd's, options after it are "
            "btorrent's",
            "``twistd -p 22900 btorrent`` runs Twisted's profiler and writes its "
            "results to a file named ``22900``",
            "``-d`` is twistd's ``--rundir``",
            "``twistd btorrent --help`` says the same",
        ):
            self.assertIn(phrase, readme)

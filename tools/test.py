#!/usr/bin/env python3
"""
Install everything btorrent's tests need, then run them::

    python3 tools/test.py [PYTEST ARGUMENTS]

On a machine with nothing but Python (Debian), in a fresh clone:

 1. The Debian packages of the real software the interop tests run
    (L{DEBIAN_PACKAGES}) are installed with C{apt-get} when one of their
    programs is missing from C{PATH}; run as root for that.  Without root
    (or without C{apt-get}) it stops with one line naming the packages and
    the command that installs them, and exit status 2.
 2. A virtual environment, C{.venv} in the checkout (or C{$BTORRENT_VENV}),
    is created, and btorrent is installed into it, editable, with its
    C{test} and C{dev} extras (pytest, libtorrent, selenium, hypothesis,
    black, ruff).  This is done again only when C{setup.py} or
    C{pyproject.toml} changed (a stamp file in the environment says for
    what it was done).
 3. pytest runs in the checkout with the environment's C{bin} first on
    C{PATH} (the tests start C{twistd} and C{btorrent}), on C{tests} or on
    the arguments given; its exit status is this script's.

Only the standard library is used, and nothing outside the checkout is
touched but the Debian packages.  C{.ci/run} runs exactly this command.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

#: The checkout this script belongs to.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The Debian packages the tests use, each with the program on C{PATH}
#: that shows it is installed: the tracker, the peers, the torrent maker,
#: the RPC client, the browser and its driver.  (Transmission's web client,
#: C{/usr/share/transmission/web}, comes with transmission-daemon.)
DEBIAN_PACKAGES: Tuple[Tuple[str, str], ...] = (
    ("opentracker", "opentracker"),
    ("aria2", "aria2c"),
    ("transmission-daemon", "transmission-daemon"),
    ("transmission-cli", "transmission-remote"),
    ("mktorrent", "mktorrent"),
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
)

#: Debian's Python has no C{ensurepip} (so no C{venv} with pip) without it.
VENV_PACKAGE = "python3-venv"

#: What pip installs into the environment.
EXTRAS = ".[test,dev]"

#: The exit status when the set-up cannot be done.
SETUP_FAILED = 2

_NAME = "tools/test.py"


class SetupError(Exception):
    """
    The set-up cannot be done; the message is the one line to print.
    """


def missingPackages(path: Optional[str] = None) -> List[str]:
    """
    The Debian packages whose program is not on C{path}.

    @param path: a C{PATH} value (default: this process's).
    """
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    return [
        package
        for package, program in DEBIAN_PACKAGES
        if shutil.which(program, path=path) is None
    ]


def hasEnsurepip() -> bool:
    """
    Whether this Python can create a virtual environment with pip in it.
    """
    return importlib.util.find_spec("ensurepip") is not None


def installCommand(packages: Sequence[str]) -> str:
    """
    The command line that installs C{packages}, as a person would type it.
    """
    return "apt-get install -y " + " ".join(packages)


def installPackages(
    packages: Sequence[str], isRoot: bool, path: Optional[str] = None
) -> None:
    """
    Install the Debian C{packages} with C{apt-get}.

    @param isRoot: whether this process may run C{apt-get install}.
    @param path: the C{PATH} to find C{apt-get} on.
    @raise SetupError: without root or C{apt-get}, or when it fails.
    """
    names = " ".join(packages)
    aptGet = shutil.which("apt-get", path=path)
    if aptGet is None:
        raise SetupError(
            f"the tests need the Debian packages {names}, and there is no "
            f"apt-get here: install them (or their programs) by hand"
        )
    if not isRoot:
        raise SetupError(
            f"the tests need the Debian packages {names}: run this as root "
            f"to install them, or first: sudo {installCommand(packages)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"{_NAME}: installing the Debian packages {names}", flush=True)
    for arguments in (["update", "-qq"], ["install", "-y", "-qq", *packages]):
        status = subprocess.call([aptGet, *arguments], env=env)
        if status != 0:
            raise SetupError(
                f"apt-get {arguments[0]} failed (exit status {status}); "
                f"the tests need: {names}"
            )


def installStamp(repository: str, python: str) -> str:
    """
    What the environment's installation was made for: the checkout's
    path, the interpreter, and the packaging files' contents.
    """
    digest = hashlib.sha256()
    digest.update(os.path.abspath(repository).encode() + b"\0")
    digest.update(os.path.abspath(python).encode() + b"\0")
    for name in ("setup.py", "pyproject.toml"):
        with open(os.path.join(repository, name), "rb") as f:
            digest.update(f.read() + b"\0")
    return digest.hexdigest()


def environmentPython(venv: str) -> str:
    """
    The interpreter of the virtual environment C{venv}.
    """
    return os.path.join(venv, "bin", "python")


def prepareEnvironment(venv: str, repository: str = REPOSITORY) -> str:
    """
    Create the virtual environment C{venv} if needed and install btorrent
    with its test and dev extras into it, unless its stamp says that was
    done for these packaging files.

    @return: the environment's interpreter.
    @raise SetupError: if it cannot be created or pip fails.
    """
    python = environmentPython(venv)
    if not os.path.exists(python):
        print(f"{_NAME}: creating the virtual environment {venv}", flush=True)
        status = subprocess.call([sys.executable, "-m", "venv", venv])
        if status != 0 or not os.path.exists(python):
            raise SetupError(
                f"cannot create the virtual environment {venv} with "
                f"{sys.executable} -m venv (exit status {status})"
            )
    stampPath = os.path.join(venv, "btorrent-install.stamp")
    stamp = installStamp(repository, python)
    try:
        with open(stampPath) as f:
            if f.read().strip() == stamp:
                return python
    except OSError:
        pass
    print(f"{_NAME}: installing btorrent{EXTRAS[1:]} into {venv}", flush=True)
    status = subprocess.call(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            EXTRAS,
            "--config-settings",
            "editable_mode=compat",
        ],
        cwd=repository,
    )
    if status != 0:
        raise SetupError(
            f"pip could not install btorrent{EXTRAS[1:]} into {venv} "
            f"(exit status {status})"
        )
    with open(stampPath, "w") as f:
        f.write(stamp + "\n")
    return python


def testEnvironment(venv: str, environ: Dict[str, str]) -> Dict[str, str]:
    """
    The environment pytest runs in: the virtual environment's C{bin} first
    on C{PATH}, as if it were activated.
    """
    env = dict(environ)
    env["VIRTUAL_ENV"] = venv
    env["PATH"] = os.pathsep.join(
        [os.path.join(venv, "bin")] + [p for p in [env.get("PATH")] if p]
    )
    env.pop("PYTHONHOME", None)
    return env


def setUp(venv: str, repository: str = REPOSITORY) -> str:
    """
    Install what is missing: the Debian packages, then the environment.

    @return: the environment's interpreter.
    @raise SetupError: naming what cannot be done.
    """
    missing = missingPackages()
    if not os.path.exists(environmentPython(venv)) and not hasEnsurepip():
        missing.append(VENV_PACKAGE)
    if missing:
        installPackages(missing, os.geteuid() == 0)
        still = missingPackages()
        if still:
            raise SetupError(
                f"still missing after {installCommand(missing)}: " + " ".join(still)
            )
    return prepareEnvironment(venv, repository)


def main(argv: Sequence[str]) -> int:
    """
    Set up, then run pytest (this process becomes it).

    @param argv: pytest's arguments (default: C{tests}).
    @return: L{SETUP_FAILED} when the set-up cannot be done.
    """
    venv = os.path.abspath(
        os.environ.get("BTORRENT_VENV") or os.path.join(REPOSITORY, ".venv")
    )
    try:
        python = setUp(venv)
    except SetupError as e:
        print(f"{_NAME}: {e}", file=sys.stderr)
        return SETUP_FAILED
    arguments = list(argv) or ["tests"]
    os.chdir(REPOSITORY)
    sys.stdout.flush()
    os.execve(
        python,
        [python, "-m", "pytest", *arguments],
        testEnvironment(venv, dict(os.environ)),
    )
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""
pytest hooks for btorrent's tests.

A test here never skips: a skipped test (C{skipTest}, trial's C{skip},
C{pytest.skip}, C{importorskip}) is reported as a failure, with its reason,
so that missing software (a Debian package, a Python package) is a red
test run, never a quietly shorter one.  C{python3 tools/test.py} installs
everything the tests need.
"""

from __future__ import annotations

import pytest

#: What a skip becomes.
SKIP_IS_FAILURE = "skipped, and a test never skips here (tests/conftest.py): "


def _skipReason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """
    Turn a skip into a failure naming the reason.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = SKIP_IS_FAILURE + _skipReason(report)

"""
Packaging for btorrent: the C{btorrent} package, the C{btorrent} console
script and the twistd plugins under C{twisted/plugins}.
"""

from setuptools import find_packages, setup

setup(
    name="btorrent",
    version="0.1.0",
    description="A BitTorrent client daemon on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"])
    + ["twisted.plugins"],
    # The web page the daemon serves (plain files, no build step).
    package_data={
        "twisted": ["plugins/btorrent_plugin.py"],
        "btorrent.control": ["static/*.html", "static/*.js", "static/*.css"],
    },
    install_requires=[
        "Twisted[tls]>=22.10",
        "bcoding>=1.5",
        "zope.interface>=5",
        "rich>=12",
        # RC4 for message stream encryption (btorrent.peer.mse).
        "cryptography>=3.4",
        "treq>=22.1",
        # OpenMetrics at /metrics (btorrent.control.metrics).
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "libtorrent>=2.0",
            "selenium>=4.11",
        ],
        "dev": ["black", "ruff", "pyinstrument"],
    },
    entry_points={"console_scripts": ["btorrent = btorrent.cli.main:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: File Sharing",
    ],
)

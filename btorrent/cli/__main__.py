"""
C{python -m btorrent.cli}: the C{btorrent} command.
"""

import sys

from btorrent.cli.main import main

sys.exit(main())

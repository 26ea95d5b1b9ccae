"""``python -m soundlib.cli``: the ``soundlib`` command."""

import sys

from soundlib.cli import main

sys.exit(main())

"""``python -m orderflow_devtools``: the same as the ``orderflow`` command."""

import sys

from orderflow_devtools.cli import main

sys.exit(main())

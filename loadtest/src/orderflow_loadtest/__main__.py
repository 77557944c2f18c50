"""``python -m orderflow_loadtest SCENARIO``: the same as ``orderflow-load``."""

import sys

from orderflow_loadtest.run import main

sys.exit(main())

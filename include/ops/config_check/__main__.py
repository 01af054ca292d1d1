"""``python -m include.ops.config_check``."""

import sys

from include.ops.config_check import __doc__ as description
from include.ops.config_check.cli import main

sys.exit(main(description=description))

"""``python -m robustness`` is the ``geomrobust`` console script."""

import sys

from robustness.cli import main

if __name__ == "__main__":
    sys.exit(main())

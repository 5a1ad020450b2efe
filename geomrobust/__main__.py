"""``python -m geomrobust`` is the ``geomrobust`` console script (also under ``torchrun -m``)."""

import sys

from geomrobust.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m stdpose ...`: the same command line as `stdpose ...`."""

import sys

from stdpose.cli import main

if __name__ == "__main__":
    sys.exit(main())

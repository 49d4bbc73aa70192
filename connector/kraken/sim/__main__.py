"""`python -m connector.kraken.sim` = `kracked sim`."""

import sys

from .server import main

sys.exit(main(sys.argv[1:]))

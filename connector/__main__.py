"""`python -m connector`: the same as `kracked connector`."""

from __future__ import annotations

import sys

from kracked.cli import main

if __name__ == "__main__":
    sys.exit(main(["connector", *sys.argv[1:]]))

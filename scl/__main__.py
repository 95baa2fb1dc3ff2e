"""``python -m scl ...``: the ``scl`` command line (scl.cli)."""
import sys

from scl.cli import main

if __name__ == "__main__":
    sys.exit(main())

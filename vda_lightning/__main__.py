"""`python -m vda_lightning <command> ...` = `vda <command> ...`."""
import sys

from vda_lightning.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m models COMMAND ...``: the ``qem`` command line without installing (see ``models.cli``)."""
import sys

from models.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m realtime``: the pipeline's command line (see ``realtime.cli``)."""
import sys

from realtime.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m realtime"))

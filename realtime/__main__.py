"""``python -m realtime``: the pipeline's command line (see ``realtime.cli``)."""
import sys

from realtime.cli import main  # sets OMP_WAIT_POLICY before torch loads (see realtime/__init__.py)

if __name__ == "__main__":
    sys.exit(main(prog="python -m realtime"))

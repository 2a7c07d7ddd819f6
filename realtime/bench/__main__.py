"""``python -m realtime.bench``: the same as ``qem bench`` (see ``realtime.bench.cli``)."""
import sys

from realtime.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())

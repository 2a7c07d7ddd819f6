"""``python -m realtime``: the pipeline's command line (see ``realtime.cli``)."""
import os
import sys

# Before torch is imported: OpenMP workers that spin while waiting steal the cores the other stages need on a busy
# CPU (the user's own setting wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from realtime.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python -m realtime"))

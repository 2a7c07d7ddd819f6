"""The real-time pose pipeline: capture -> batcher -> engine -> post -> outputs (see ``realtime.pipeline``).

Command lines: ``python -m realtime`` (``realtime.cli``), ``qem bench``; demos in ``demos/``.
"""
import os

# Every entry point (python -m realtime, realtime.bench, demos/) imports this package before torch: OpenMP workers
# that spin while waiting steal the cores the other stages need on a busy CPU. The user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""The real-time pose pipeline: capture -> batcher -> engine -> post -> outputs (see ``realtime.pipeline``).

Command lines: ``python -m realtime`` (``realtime.cli``), ``qem bench``; demos in ``demos/``. The stages live in
rooms (``sources/``, ``engine/``, ``post/``, ``publish/``, ``view/``, ``outputs/``, ``bench/``); docs/architecture.md
says what goes where and which room may import which. ``BUNDLED_CLIP``: the synthetic clip every demo and benchmark
falls back to.
"""
import os
from pathlib import Path

# Every entry point (python -m realtime, realtime.bench, demos/) imports this package before torch: OpenMP workers
# that spin while waiting steal the cores the other stages need on a busy CPU. The user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BUNDLED_CLIP = Path(__file__).resolve().parent / "assets" / "synth_clip.mp4"

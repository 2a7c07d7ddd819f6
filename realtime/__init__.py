"""The real-time pose pipeline: capture -> batcher -> engine -> post -> outputs (see ``realtime.pipeline``).

Command lines: ``python -m realtime`` (``realtime.cli``), ``python -m realtime.bench``; demos in ``demos/``.
"""

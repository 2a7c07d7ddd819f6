"""Measurements: ``qem bench`` and its sections (``cli``; ``python -m realtime.bench``), what they measure with
(``measure``), CPU deployment variants (``deploy``), the Ultralytics peers (``peer``), message sinks (``sinks``), DEKR's
own code side by side (``dekr``, ``dekr_reference``), the soak run (``soak``) and tracking quality (``track_eval``:
``qem track-eval``)."""

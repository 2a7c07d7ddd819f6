"""A camera fleet past one machine, on Ray: ``qem serve`` (``cli``) connects to a cluster (``cluster``), starts the
named, restartable coordinator actor (``coordinator``) that runs one engine actor per GPU or per few CPU cores
(``engine_host``: the project's own pipeline for the cameras it is given), places the cameras by pixel rate within
each engine's capacity (``placement``), moves them on failure, and serves the fleet's view (``status_view``).
Ray is an extra (``pip install -e .[cluster]``); nothing outside this package imports it. See docs/cluster.md.
"""

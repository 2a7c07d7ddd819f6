"""The size of the first frame a run will see, read before the model is loaded, so that ``--backend auto`` times the
runtimes at the canvas that frame gets (``models.export.auto``).

Files (one named by an HTTP URL too: one more request, within the timeouts) and images are opened with the
project's own reader and their first frame decoded (rotation and EXIF orientation applied, exactly as the run will
see it). Cameras and streams are not opened twice: their size is known only once the run starts, and ``auto`` then
measures at the square input (its line says so).
"""
from __future__ import annotations

from realtime.sources.readers import SourceError, SourceSpec, make_reader


def first_frame_size(spec: SourceSpec, open_timeout: float = 5.0) -> tuple[int, int] | None:
    """(H, W) of the first frame of a file or images source; None for a live source or one that cannot be read
    now (the run then reports the problem itself)."""
    if spec.live:
        return None
    reader = make_reader(spec, open_timeout=open_timeout, read_timeout=open_timeout)
    try:
        reader.open()
        got = reader.read()
    except (SourceError, OSError, ValueError):
        return None
    finally:
        reader.close()
    if got is None:
        return None
    image = got[0]
    return int(image.shape[0]), int(image.shape[1])

"""Why a weights file does not load, in words a user can act on: what the file looks like when its first bytes tell
(empty, cut short, a web page, a video, a pickle with other objects), else the first sentence of PyTorch's own
reason, whole. Used wherever ``torch.load(weights_only=True)`` refuses a file: checkpoints and imported weights."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"                                      # torch.save's format since PyTorch 1.6
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"     # the older one: a pickled magic number first
UNSAFE = "a PyTorch file that holds objects other than tensors, which are not loaded for safety"


def _looks_like(head: bytes) -> str | None:
    """What a file that is not PyTorch's is, from its first bytes, for the common mistakes."""
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page (a web page saved in place of the weights?)"
    if head[4:8] == b"ftyp":
        return "an MP4 or QuickTime video"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff")):
        return "an image"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a plain Python pickle"
    return None


def _clip(text: str, limit: int = 120) -> str:
    """The first sentence of ``text`` on one line (a C++ assertion's location left out), at most ``limit``
    characters, cut between words."""
    text = re.sub(r"^\s*\[enforce fail at [^\]]*\][\s.]*", "", text)
    sentence = " ".join(text.split()).split(". ")[0].rstrip(".")
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def why_unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` refused ``path`` (raising ``exc``), in words: what the file looks like when its first
    bytes tell, else the first sentence of the error."""
    text = str(exc)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    refused = "Weights only load failed" in text
    cut_short = f"cut short at {size} bytes (an interrupted download or copy?)"
    if size == 0:
        return "an empty file (0 bytes), not PyTorch weights"
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return f"a zip archive (PyTorch's format) {cut_short}"
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("/data.pkl") for n in archive.namelist()):
                return "a zip archive, not a PyTorch file (no data.pkl inside)"
        return UNSAFE if refused else f"not a readable PyTorch weights file ({_clip(text)})"
    if head.startswith(LEGACY_MAGIC):
        if isinstance(exc, (EOFError, IndexError)) or "unexpected EOF" in text:
            return f"a PyTorch file {cut_short}"
        return UNSAFE if refused else f"not a readable PyTorch weights file ({_clip(text)})"
    return f"not a PyTorch file ({_looks_like(head) or f'it starts with {head[:16]!r}'})"

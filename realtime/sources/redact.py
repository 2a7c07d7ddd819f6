"""Credentials in stream URLs never reach logs, outputs or errors: ``redact`` masks them in any text.

``rtsp://user:secret@cam.local:554/live`` becomes ``rtsp://***@cam.local:554/live``; query parameters whose
names look secret (``password``, ``token``, ``key``, ...) get their values masked too.
"""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s?#]*)@")
_SECRET_QUERY = re.compile(r"(?P<name>[?&;](?:pass(?:word)?|pwd|token|key|secret|auth|signature|sig)=)[^&#\s]*",
                           re.IGNORECASE)


def redact(text: object) -> str:
    """``text`` (or ``str(text)``) with URL credentials and secret query values replaced by ``***``."""
    s = str(text)
    s = _USERINFO.sub(lambda m: f"{m['scheme']}***@", s)
    return _SECRET_QUERY.sub(lambda m: f"{m['name']}***", s)

"""Downloads for ``qem import``: a URL is fetched once into the user cache (``$QEM_CACHE_DIR/downloads``, else
``~/.cache/qem-pose/downloads``), with a progress bar on a terminal, written to a temporary file and renamed into
place, so an interrupted download never leaves a partial file under the final name. Nothing else in the project
downloads. A URL's user name and password never reach the messages (``public_url``) nor the cache's names.

Each URL has its own folder, named by a short hash of the URL (``downloads/<hash>/<file name>``): two URLs with the
same file name never share a file, and the file keeps its own name. A download that turns out not to be what was
wanted is dropped with ``forget``, so the next run downloads it again.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

TIMEOUT_S = 30.0  # per connection attempt and per read


class FetchError(ValueError):
    """A URL that cannot be downloaded; one line naming it (without credentials) and why."""


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(str(source)).scheme in ("http", "https")


def public_url(url: str) -> str:
    """``url`` without its user name and password."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def authorized_request(url: str) -> urllib.request.Request:
    """A request for ``url``; a user name and password in it go into a basic-auth header, not the address."""
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(public_url(url))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def downloads_dir() -> Path:
    from models.export.auto import cache_dir

    return cache_dir() / "downloads"


def url_key(url: str) -> str:
    """A short name for ``url`` (credentials aside): the cache folder of its download."""
    return hashlib.sha256(public_url(url).encode()).hexdigest()[:12]


def fetch(url: str, folder: Path | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The file at ``url`` in the download cache (``folder / url_key(url) / its name``, downloaded on first use);
    raises ``FetchError``."""
    name = Path(urllib.parse.urlsplit(url).path).name
    if not name:
        raise FetchError(f"{public_url(url)}: the URL names no file")
    folder = (Path(folder) if folder is not None else downloads_dir()) / url_key(url)
    target = folder / name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{name}.part{os.getpid()}")
    try:
        with urllib.request.urlopen(authorized_request(url), timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            # on a terminal only (a log gets no carriage returns), and erased when done, so whatever follows (an
            # error, the result) starts its own line
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False, disable=None) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        if total is not None and partial.stat().st_size != total:
            raise FetchError(f"{public_url(url)}: the download stopped at {partial.stat().st_size} of {total} bytes")
        shutil.move(partial, target)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{public_url(url)}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"{public_url(url)}: cannot download ({reason})") from None
    finally:
        partial.unlink(missing_ok=True)
        if not target.exists():
            _remove_if_empty(folder)
    return target


def forget(path: Path) -> None:
    """Drop a downloaded file from the cache (and its folder, once empty)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    _remove_if_empty(path.parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or already gone
        pass

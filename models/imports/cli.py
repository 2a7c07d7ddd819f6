"""``qem import``: weights published by others -> a project checkpoint that every path of the pipeline takes.

    qem import dekr pose_dekr_hrnetw32_coco.pth                      DEKR's release -> dekr_w32_coco.pt beside it
    qem import dekr dekr_hrnet-w32_8xb10-140e_coco-512x512_<id>.pth --out dekr_w32_coco.pt   MMPose's copy
    qem import dekr <URL> --rescore final_rescore_coco_kpt.pth      a URL is downloaded once into the user cache
    qem predict --weights dekr_w32_coco.pt --source 0                then run it

The checkpoint holds DEKR's network, layer for layer, and says where its weights came from (file name, SHA-256,
layout, data, licence). It runs DEKR's own inference rules (``models.inference.dekr``).
What each kind reads: qem import KIND --help.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.argtypes import OneLineParser
from models.checkpoint import CheckpointError
from models.imports.dekr import DekrImportError, UnreadableWeights, import_dekr
from models.imports.fetch import FetchError, fetch, forget, is_url, public_url

DEKR = """qem import dekr: DEKR's published weights (a .pth file, or an http(s) URL) -> a project checkpoint.

Reads the authors' release (pose_dekr_hrnetw32_coco.pth, ..._crowdpose.pth and the W48 ones) and MMPose's copies
(dekr_hrnet-w32_8xb10-140e_coco-512x512_<id>.pth and siblings), COCO (17 keypoints) or CrowdPose (14). A URL is
downloaded once into the user cache ($QEM_CACHE_DIR/downloads, else ~/.cache/qem-pose/downloads); a download that
is not a readable weights file is removed from the cache again.

    qem import dekr pose_dekr_hrnetw32_coco.pth                      -> dekr_w32_coco.pt beside it
    qem import dekr pose_dekr_hrnetw32_coco.pth --rescore final_rescore_coco_kpt.pth   keep DEKR's pose rescorer
    qem import dekr <URL>                                            download, convert -> ./dekr_w32_coco.pt
    qem predict --weights dekr_w32_coco.pt --source 0                then run it
"""


def plain(text: str) -> str:
    """Help text without the docstrings' markup (``code`` -> code)."""
    return text.replace("``", "")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="qem import", description=plain(__doc__),
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    d = sub.add_parser("dekr", help="DEKR's COCO or CrowdPose weights (the authors' release or MMPose's)",
                       description=DEKR, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("source", metavar="FILE|URL", help="a .pth file, or an http(s) URL to download once")
    d.add_argument("--out", help="checkpoint to write (default: dekr_w32_coco.pt or the like, beside the input file, "
                                 "or in the current folder for a URL)")
    d.add_argument("--data", choices=("coco", "crowdpose"),
                   help="what the weights must have been trained on (checked against their keypoints)")
    d.add_argument("--rescore", metavar="FILE|URL",
                   help="DEKR's pose rescoring net (final_rescore_coco_kpt.pth or _crowdpose), kept as the scorer")
    args = p.parse_args(argv)
    downloaded: dict[str, str] = {}  # cached file -> its URL

    def local(source: str | None) -> str | None:
        if source is None or not is_url(source):
            return source
        path = str(fetch(source))
        downloaded[path] = source
        return path

    try:
        out = import_dekr(local(args.source), args.out, args.data, local(args.rescore),
                          out_dir=Path.cwd() if is_url(args.source) else None)  # not into the download cache
    except UnreadableWeights as exc:
        if str(exc.path) not in downloaded:
            return _fail(str(exc))
        forget(exc.path)  # a rerun, once the server holds the right file, downloads it again
        return _fail(f"{public_url(downloaded[str(exc.path)])}: {exc.detail}; removed from the cache, so the next "
                     f"run downloads it again")
    except (DekrImportError, FetchError, CheckpointError, OSError) as exc:
        return _fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    from models.checkpoint import checkpoint_meta

    meta = checkpoint_meta(out)
    print(f"wrote {out}: {meta['model']}, weights {meta['source']} ({meta['layout']} layout, sha256 "
          f"{meta['sha256'][:12]}), licence {meta['licence']}")
    return 0


def _fail(message: str) -> int:
    """What the command names cannot be used (a file, a download, its weights): one line, status 1."""
    print(f"error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""``qem import``: weights published by others -> a project checkpoint that every path of the pipeline takes.

    qem import dekr pose_dekr_hrnetw32_coco.pth                      DEKR's release -> dekr_w32_coco.pt beside it
    qem import dekr dekr_hrnet-w32_8xb10-140e_coco-512x512_<id>.pth --out dekr_w32_coco.pt   MMPose's copy
    qem import dekr <URL> --rescore final_rescore_coco_kpt.pth      a URL is downloaded once into the user cache
    qem predict --weights dekr_w32_coco.pt --source 0                then run it

The checkpoint holds DEKR's network, layer for layer, and says where its weights came from (file name, SHA-256,
layout, data, licence). It runs DEKR's own inference rules (``models.inference.dekr``).
"""
from __future__ import annotations

import argparse
import sys

from models.argtypes import OneLineParser
from models.checkpoint import CheckpointError
from models.imports.dekr import DekrImportError, import_dekr
from models.imports.fetch import FetchError, fetch, is_url


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="qem import", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    d = sub.add_parser("dekr", help="DEKR's COCO or CrowdPose weights (the authors' release or MMPose's)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("source", metavar="FILE|URL", help="a .pth file, or an http(s) URL to download once")
    d.add_argument("--out", help="checkpoint to write (default: dekr_w32_coco.pt or the like, beside the input)")
    d.add_argument("--data", choices=("coco", "crowdpose"),
                   help="what the weights must have been trained on (checked against their keypoints)")
    d.add_argument("--rescore", metavar="FILE|URL",
                   help="DEKR's pose rescoring net (final_rescore_coco_kpt.pth or _crowdpose), kept as the scorer")
    args = p.parse_args(argv)
    try:
        source = fetch(args.source) if is_url(args.source) else args.source
        rescore = fetch(args.rescore) if args.rescore and is_url(args.rescore) else args.rescore
        out = import_dekr(source, args.out, args.data, rescore)
    except (DekrImportError, FetchError, CheckpointError, OSError) as exc:
        print(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
              file=sys.stderr)
        return 2
    from models.checkpoint import checkpoint_meta

    meta = checkpoint_meta(out)
    print(f"wrote {out}: {meta['model']}, weights {meta['source']} ({meta['layout']} layout, sha256 "
          f"{meta['sha256'][:12]}), licence {meta['licence']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

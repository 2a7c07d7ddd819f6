"""``qem train --nproc-per-node N``: N training processes on this machine, started by torchrun's own launcher
(``torch.distributed.run``) inside this process, so that a failure ends the way a single process does: the rank's
one ``error:`` line (rank 0's when every rank meets the same problem) and a non-zero exit, without torchrun's
failure report and traceback. Several machines: ``torchrun ... -m models.training.train`` on each
(docs/training.md); there, too, only rank 0 prints an error that every rank meets (``report_error``).
"""
from __future__ import annotations

import logging
import os
import sys
import time

OTHER_RANKS_WAIT_S = 5.0


def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node N`` (or ``--nproc-per-node=N``): what each training process gets."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a == "--nproc-per-node":
            skip = True
        elif not a.startswith("--nproc-per-node="):
            out.append(a)
    return out


def launch(argv: list[str], nproc: int) -> int:
    """Runs ``models.training.train argv`` in ``nproc`` processes; returns the exit status (0: every rank ended
    well). A rank that failed has said why in its own line; a rank killed by a signal is named here."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)  # the report is replaced by the ranks' lines
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # training sets its own threads; this silences torchrun's notice
    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "models.training.train", *argv]))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode < 0:
            print(f"error: training process of rank {rank} was killed by signal {-failure.exitcode}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


def report_error(line: str) -> None:
    """Ends a training process with ``line`` (``error: ...``). Under torchrun every rank usually meets the same
    problem (a missing file, no GPU): rank 0 says it at once; the other ranks wait a few seconds, in which torchrun
    stops them once rank 0 has ended, and speak only if it did not (a problem of their own)."""
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        time.sleep(OTHER_RANKS_WAIT_S)
        line = line.replace("error: ", f"error: rank {rank}: ", 1)
    sys.exit(line)

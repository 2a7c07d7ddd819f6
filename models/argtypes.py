"""Checked argument types for argparse (``type=``), and a parser whose errors are one line.

A bad value is refused at the door: ``error: argument --threads: must be an integer >= 1, got '0'`` on stderr,
exit status 2 (argparse's convention for usage errors), no usage block and no traceback.
"""
from __future__ import annotations

import argparse
import math


class OneLineParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose usage errors are a single ``error: ...`` line (see ``--help`` for the usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def int_at_least(low: int):
    """An integer >= ``low``."""
    def check(text: str) -> int:
        what = f"an integer >= {low}"
        value = _number(text, int, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    check.__name__ = f"int>={low}"
    return check


def float_above(low: float, inclusive: bool = False):
    """A finite number > ``low`` (>= with ``inclusive``)."""
    def check(text: str) -> float:
        what = f"a number {'>=' if inclusive else '>'} {low:g}"
        value = _number(text, float, what)
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    check.__name__ = f"float>{low}"
    return check


def unit_float(text: str) -> float:
    """A number in [0, 1] (scores, OKS)."""
    value = _number(text, float, "a number in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port)."""
    value = _number(text, int, "a port number 0-65535")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text!r}")
    return value


IMGSZ_MIN, IMGSZ_MAX, STRIDE = 32, 4096, 32


def imgsz(text: str) -> int:
    """A network input size: a multiple of the network's largest stride (32) in [32, 4096]."""
    what = f"a multiple of {STRIDE} in [{IMGSZ_MIN}, {IMGSZ_MAX}]"
    value = _number(text, int, what)
    if value % STRIDE or not IMGSZ_MIN <= value <= IMGSZ_MAX:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


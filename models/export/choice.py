"""The rule ``backend="auto"`` picks a runtime by, given what was measured: the fastest candidate whose accuracy may
be trusted.

A candidate is a backend at a precision with its measured ms per call at the run's input shape and, where it was
measured, its AP drop against fp32 on the benchmark split (``ap_drop`` = AP fp32 - AP this; None = not recorded).

- fp32 is the reference: always allowed.
- bf16 is allowed within ``AP_LIMITS["bf16"]``; with no recorded AP it is allowed too, since the project measured it
  on every backend that runs it before making it their default (BENCHMARKS.md, CPU deployment).
- int8 is allowed only with a recorded AP within ``AP_LIMITS["int8"]``: its error depends on the calibration, so an
  int8 model nobody measured is never picked.

Among the allowed candidates the fastest wins; ties go to the earlier candidate in the list.
"""
from __future__ import annotations

from dataclasses import dataclass

AP_LIMITS = {"fp32": 0.0, "bf16": 0.01, "int8": 0.02}


@dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str  # fp32 | bf16 | int8
    ms: float       # median ms per call at the run's shape
    ap_drop: float | None = None  # AP fp32 - AP this on the benchmark split; None: not recorded

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"

    def refused(self) -> str | None:
        """Why this candidate may not be picked, or None when it may."""
        if self.precision not in AP_LIMITS:
            return f"unknown precision {self.precision!r}"
        limit = AP_LIMITS[self.precision]
        if self.precision == "fp32":
            return None
        if self.ap_drop is None:
            return None if self.precision == "bf16" else "no recorded AP"
        if self.ap_drop > limit:
            return f"AP -{self.ap_drop:.4f}, beyond the {limit:g} limit"
        return None


@dataclass(frozen=True)
class Choice:
    chosen: Candidate
    candidates: tuple[Candidate, ...]

    def explain(self) -> str:
        """Every candidate, fastest first: ms, AP drop where recorded, and why one was left out."""
        parts = []
        for c in sorted(self.candidates, key=lambda c: c.ms):
            text = f"{c.name} {c.ms:.1f} ms"
            if c.ap_drop is not None:
                text += f" AP {-c.ap_drop:+.4f}"
            why = c.refused()
            if why:
                text += f" (left out: {why})"
            parts.append(text)
        return "; ".join(parts)


def pick(candidates: list[Candidate]) -> Choice:
    """The fastest allowed candidate (module docstring); at least one fp32 or bf16 candidate must be given."""
    allowed = [c for c in candidates if c.refused() is None]
    if not allowed:
        raise ValueError("no candidate within the AP limits: " + "; ".join(f"{c.name}: {c.refused()}"
                                                                         for c in candidates))
    best = min(allowed, key=lambda c: c.ms)  # min keeps the first of equal values
    return Choice(best, tuple(candidates))

"""Figures quoted in the README and docs/ equal the ones in BENCHMARKS.md / RESULTS.md they name.

The convention (docs/testing.md, "Figures in the documents"): a figure's home carries ``<!-- figure: KEY -->`` right
after its number, a quote carries ``<!-- quotes: KEY -->`` right after its copy; only a unit or emphasis may stand
between a number and its marker. Markers inside inline code (between backticks) are examples, not markers.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOMES = ("BENCHMARKS.md", "RESULTS.md")


def documents() -> list[str]:
    return sorted(["README.md", *HOMES, *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])


DOCS = documents()
NUMBER = r"(-?\d+(?:\.\d+)?)"
GAP = r"[^\d<\n]{0,8}"  # a unit (x, %, ms, " FPS") or emphasis (**) between the number and its marker
MARKER = re.compile(NUMBER + GAP + r"<!-- (figure|quotes): ([a-z0-9-]+) -->")
ANY_MARKER = re.compile(r"<!-- (figure|quotes): ([^ ]*) -->")
CODE = re.compile(r"`[^`]*`")
README_QUOTES = {"cpu-default-fps", "cpu-default-vs-peer-openvino", "cpu-default-fps-files", "cpu-graph-vs-torch",
                 "ap-bundled-default"}


def markers(name: str) -> list[tuple[str, str, str, int]]:
    """(kind, key, number, line) of every marker in a document."""
    out = []
    for n, line in enumerate((ROOT / name).read_text().splitlines(), 1):
        line = CODE.sub("``", line)
        found = [(m.group(2), m.group(3), m.group(1)) for m in MARKER.finditer(line)]
        assert len(found) == len(ANY_MARKER.findall(line)), \
            f"{name}:{n}: a marker without a number right before it, or a key not in a-z0-9-: {line.strip()}"
        out += [(kind, key, number, n) for kind, key, number in found]
    return out


def homes() -> dict[str, tuple[str, str]]:
    """key -> (number, 'FILE:line') of every figure's home."""
    found: dict[str, tuple[str, str]] = {}
    for name in documents():
        for kind, key, number, line in markers(name):
            if kind == "figure":
                assert name in HOMES, f"{name}:{line}: figure {key} has its home outside {', '.join(HOMES)}"
                assert key not in found, f"figure {key} has two homes: {found[key][1]} and {name}:{line}"
                found[key] = (number, f"{name}:{line}")
    return found


def test_every_figure_has_one_home_and_is_quoted_somewhere():
    found = homes()
    assert len(found) >= 10
    quoted = {key for name in documents() for kind, key, _, _ in markers(name) if kind == "quotes"}
    assert not set(found) - quoted, f"figures nobody quotes (drop their marker): {sorted(set(found) - quoted)}"


@pytest.mark.parametrize("name", DOCS)
def test_quotes_repeat_the_number_of_their_home(name):
    found = homes()
    for kind, key, number, line in markers(name):
        if kind != "quotes":
            continue
        assert key in found, f"{name}:{line}: quotes {key}, which has no home (<!-- figure: {key} -->)"
        assert number == found[key][0], \
            f"{name}:{line}: quotes {key} as {number}, its home {found[key][1]} says {found[key][0]}"


def test_the_readme_quotes_its_headline_figures():
    quoted = {key for kind, key, _, _ in markers("README.md") if kind == "quotes"}
    assert README_QUOTES <= quoted, f"README.md no longer quotes {sorted(README_QUOTES - quoted)}"


def test_a_quote_that_drifted_from_its_home_is_caught(tmp_path, monkeypatch):
    """The check itself: a copy that differs from its home fails, with both places named."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "BENCHMARKS.md").write_text("| x | **279.4**<!-- figure: fps --> |\n")
    (tmp_path / "RESULTS.md").write_text("AP 0.843<!-- figure: ap -->, also 0.843<!-- quotes: ap -->\n")
    (tmp_path / "README.md").write_text("about 270 FPS<!-- quotes: fps -->\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=r"README.md:1: quotes fps as 270, its home BENCHMARKS.md:1 says 279.4"):
        test_quotes_repeat_the_number_of_their_home("README.md")
    test_quotes_repeat_the_number_of_their_home("RESULTS.md")
    (tmp_path / "README.md").write_text("see <!-- quotes: fps --> above\n")
    with pytest.raises(AssertionError, match="without a number right before it"):
        markers("README.md")

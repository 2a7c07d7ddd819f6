"""The README's commands exist and parse; the quick ones run as written (docs/testing.md, "The README's commands").

Every line of a fenced ``bash`` block in README.md, docs/*.md, RESULTS.md and BENCHMARKS.md that starts with ``qem``,
``python`` or ``torchrun`` is a command. A block preceded by ``<!-- readme-test: run -->`` (README.md only) runs line by line, as written, in a
fresh temporary folder. Every other command is checked against its program's ``--help``: the program exists, and
every ``--option`` the document gives it is one the program lists. ``qem`` runs as ``python -m models`` from this
checkout, so an installed ``qem`` of another tree is never what is tested.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REPORTS = [ROOT / "RESULTS.md", ROOT / "BENCHMARKS.md"]  # their commands are checked too, never run
RUN_MARK = "<!-- readme-test: run -->"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n*```bash\n(?P<body>.*?)```", re.S)


def blocks(path: Path) -> list[tuple[bool, list[str]]]:
    """(marked to run, commands) of each bash block; continuation lines joined, trailing comments dropped."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in BLOCK.finditer(text):
        lines = m.group("body").replace("\\\n", " ").splitlines()
        commands = []
        for line in lines:
            words = shlex.split(line, comments=True)
            if words and words[0] in ("qem", "python", "torchrun"):
                commands.append(" ".join(words))
        found.append((m.group("before").strip() == RUN_MARK, commands))
    return found


def argv(command: str) -> list[str]:
    """A documented command as this interpreter runs it from this checkout."""
    words = shlex.split(command)
    if words[0] == "qem":
        words = ["python", "-m", "models", *words[1:]]
    elif words[0] == "torchrun":  # the training module itself: torchrun's own options are torch's business
        words = ["python", *words[words.index("-m"):]]
    words[0] = sys.executable
    return [str(ROOT / w) if not w.startswith("-") and "/" in w and (ROOT / w).exists() else w for w in words]


def program(words: list[str]) -> list[str]:
    """The program part of a command: interpreter + script, or interpreter -m module (+ qem subcommand)."""
    if words[1] != "-m":
        return words[:2]
    if words[2] == "models" and len(words) > 3 and not words[3].startswith("-"):
        return words[:4]
    return words[:3]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}


# Runs each program's --help in one fresh interpreter (torch loads once): a subprocess per program would take a minute.
HELPS = r"""
import contextlib, io, json, runpy, sys
out = {}
for prog in json.loads(sys.argv[1]):
    buf = io.StringIO()
    sys.argv = [prog[-1], "--help"] if prog[0] != "-m" else [prog[1], *prog[2:], "--help"]
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            if prog[0] == "-m":
                runpy.run_module(prog[1], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(prog[0], run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            code, _ = 1, buf.write(repr(exc))
    out[" ".join(prog)] = [code, buf.getvalue()]
print(json.dumps(out))
"""


def help_texts(progs: list[tuple[str, ...]], cwd: Path) -> dict[tuple[str, ...], tuple[int, str]]:
    """``PROGRAM --help`` of each program (without the interpreter): exit code and output."""
    proc = subprocess.run([sys.executable, "-c", HELPS, json.dumps([p[1:] for p in progs])], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {p: tuple(found[" ".join(p[1:])]) for p in progs}


def test_readme_has_the_first_commands_and_a_block_that_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text and "source .venv/bin/activate" in text
    assert any(run and commands for run, commands in blocks(ROOT / "README.md"))


def test_every_documented_command_exists_and_takes_the_options_shown(tmp_path):
    commands = {c: path.name for path in DOCS + REPORTS for run, cs in blocks(path) for c in cs}
    helps = help_texts(sorted({tuple(program(argv(c))) for c in commands}), tmp_path)
    problems = []
    for command, doc in commands.items():
        rc, text = helps[tuple(program(argv(command)))]
        if rc != 0:
            problems.append(f"{doc}: {command}: --help exited {rc}: {text[-300:]}")
            continue
        unknown = [w.split("=")[0] for w in shlex.split(command) if w.startswith("--") and w != "--help"]
        unknown = [o for o in unknown if not re.search(re.escape(o) + r"(?![\w-])", text)]
        if unknown and not command.startswith("torchrun"):
            problems.append(f"{doc}: {command}: not in its --help: {unknown}")
        elif unknown:  # torchrun's own options come before -m
            module_part = command.split(" -m ", 1)[1]
            if any(o in module_part for o in unknown):
                problems.append(f"{doc}: {command}: not in its --help: {unknown}")
    assert not problems, "\n".join(problems)


def test_the_blocks_marked_to_run_run_as_written(tmp_path):
    for run, commands in blocks(ROOT / "README.md"):
        if not run:
            continue
        for command in commands:
            assert "<" not in command, f"a block marked to run has a placeholder: {command}"
            proc = subprocess.run(argv(command), cwd=tmp_path, env=env(), capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, f"{command}\n{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("path", DOCS + REPORTS, ids=lambda p: p.name)
def test_links_and_pictures_point_at_what_exists(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.name}: link to {target}: no such file"
        if anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, f"{path.name}: link to {target}: no such heading"
        if dest.suffix == ".png":
            assert dest.stat().st_size < 150 * 1024, f"{dest.name} is over 150 KB"

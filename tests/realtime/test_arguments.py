"""Every numeric option of ``python -m realtime`` is checked at the door: a bad value is one line naming the option
on stderr and exit status 2, before anything is loaded."""
import pytest

from realtime.cli import build_parser, check_combinations, main
from tests.realtime.helpers import run_cli

BAD = [  # (arguments, words the one line must hold)
    (["--max-frames", "-1"], "argument --max-frames: must be an integer >= 1, got '-1'"),
    (["--max-frames", "0"], "argument --max-frames: must be an integer >= 1, got '0'"),
    (["--max-frames", "2.5"], "argument --max-frames: must be an integer >= 1, got '2.5'"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1, got '0'"),
    (["--imgsz", "100"], "argument --imgsz: must be a multiple of 32 in [32, 4096], got '100'"),
    (["--imgsz", "0"], "argument --imgsz: must be a multiple of 32"),
    (["--imgsz", "8192"], "argument --imgsz: must be a multiple of 32"),
    (["--http-port", "65536"], "argument --http-port: must be a port number 0-65535, got '65536'"),
    (["--http-port", "-1"], "argument --http-port: must be a port number 0-65535"),
    (["--http-port", "http"], "argument --http-port: must be a port number 0-65535, got 'http'"),
    (["--min-score", "1.5"], "argument --min-score: must be a number in [0, 1], got '1.5'"),
    (["--open-timeout", "0"], "argument --open-timeout: must be a number > 0, got '0'"),
    (["--read-timeout", "-2"], "argument --read-timeout: must be a number > 0"),
    (["--read-timeout", "nan"], "argument --read-timeout: must be a number > 0, got 'nan'"),
    (["--stall-timeout", "inf"], "argument --stall-timeout: must be a number > 0, got 'inf'"),
    (["--max-attempts", "-1"], "argument --max-attempts: must be an integer >= 0"),
    (["--retry-max", "0"], "argument --retry-max: must be a number > 0, got '0'"),
    (["--batch-window-ms", "-1"], "argument --batch-window-ms: must be a number >= 0, got '-1'"),
    (["--report-every", "0"], "argument --report-every: must be a number > 0"),
    (["--segment", "0"], "argument --segment: must be a number > 0, got '0'"),
    (["--segment", "ten"], "argument --segment: must be a number > 0, got 'ten'"),
    (["--segment", "10", "--keep", "0"], "argument --keep: must be an integer >= 1, got '0'"),
    (["--segment", "10", "--keep-gb", "0"], "argument --keep-gb: must be a number > 0, got '0'"),
    (["--keyframe-every", "0"], "argument --keyframe-every: must be a number > 0, got '0'"),
    (["--keep", "3"], "argument --keep: needs --segment"),
    (["--keep-gb", "1"], "argument --keep-gb: needs --segment"),
    (["--track-score", "1.5"], "argument --track-score: must be a number in [0, 1], got '1.5'"),
    (["--track-min-oks", "-0.1"], "argument --track-min-oks: must be a number in [0, 1]"),
    (["--track-max-age", "-1"], "argument --track-max-age: must be an integer >= 0, got '-1'"),
]


def parse(args):
    parser = build_parser(name="t")
    check_combinations(parser, parser.parse_args(args))


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_value_is_one_line_naming_the_option_and_exit_status_2(args, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["--source", "synth", *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines


GOOD = [["--max-frames", "1"], ["--threads", "1"], ["--imgsz", "32"], ["--imgsz", "4096"], ["--http-port", "0"],
        ["--http-port", "65535"], ["--batch-window-ms", "0"], ["--min-score", "1"], ["--segment", "0.5"],
        ["--segment", "60", "--keep", "1", "--keep-gb", "0.001"], ["--track-max-age", "0"]]


@pytest.mark.parametrize("args", GOOD, ids=[" ".join(a) for a in GOOD])
def test_values_at_the_edges_are_accepted(args):
    parse(["--source", "synth", *args])


def test_the_real_command_refuses_before_loading_anything(tmp_path):
    proc = run_cli(["--source", "synth", "--max-frames", "-1"], tmp_path, script="-m", timeout=60)
    assert proc.returncode == 2 and not (tmp_path / "runs").exists()
    assert proc.stderr == "error: argument --max-frames: must be an integer >= 1, got '-1' (see --help)\n"


def test_a_listener_waits_for_its_publisher_unless_told_otherwise():
    from realtime.cli import max_attempts

    parser = build_parser(name="t")
    attempts = [max_attempts(parser.parse_args(["--source", "rtsp://127.0.0.1:8554/live", *extra]))
                for extra in ([], ["--rtsp-listen"], ["--rtsp-listen", "--max-attempts", "3"], ["--max-attempts", "0"])]
    assert attempts == [6, 0, 3, 0]


def test_main_exits_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", "synth", "--threads", "0"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1

"""models.evaluation.speed prints one row per config, with the heatmap head's or added blocks' parameters when asked."""
import pytest

from models.evaluation.speed import main


def test_rows_name_the_config_and_the_heatmap_head_adds_parameters(capsys):
    rows = {}
    for extra in ([], ["--keypoint-heatmaps"], ["--encoder-blocks", "2", "--kpt-blocks", "3"]):
        main(["--configs", "tiny", "--size", "64", "--repeats", "1", "--threads", "1", *extra])
        line = capsys.readouterr().out.splitlines()[-1].split()
        assert line[0] == "tiny" and line[1] == "64"
        rows[" ".join(extra)] = line
    for variant in ("--keypoint-heatmaps", "--encoder-blocks 2 --kpt-blocks 3"):
        assert float(rows[variant][2]) > float(rows[""][2])   # params (M)
        assert float(rows[variant][3]) > float(rows[""][3])   # GFLOPs
    with pytest.raises(SystemExit):
        main(["--configs", "tiny", "realtime", "--encoder-blocks", "2"])


def test_bf16_autocast_is_named_and_runs_the_whole_inference(capsys):
    main(["--configs", "tiny", "--size", "64", "--repeats", "1", "--threads", "1", "--amp", "bf16"])
    out = capsys.readouterr().out.splitlines()
    assert "bf16 autocast" in out[0]
    row = out[-1].split()
    assert row[0] == "tiny" and float(row[4]) > 0 and float(row[5]) > 0

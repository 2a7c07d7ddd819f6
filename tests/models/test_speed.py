"""models.speed prints one row per config, with the heatmap head's parameters when asked."""
from models.speed import main


def test_rows_name_the_config_and_the_heatmap_head_adds_parameters(capsys):
    rows = {}
    for extra in ([], ["--keypoint-heatmaps"]):
        main(["--configs", "tiny", "--size", "64", "--repeats", "1", "--threads", "1", *extra])
        line = capsys.readouterr().out.splitlines()[-1].split()
        assert line[0] == "tiny" and line[1] == "64"
        rows[bool(extra)] = line
    assert float(rows[True][2]) > float(rows[False][2])   # params (M)
    assert float(rows[True][3]) > float(rows[False][3])   # GFLOPs

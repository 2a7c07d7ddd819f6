"""qem ablation: rows train and evaluate with both pose scores; --evaluate-only re-evaluates without training."""
import json

import pytest

from models.training.ablation import main


@pytest.mark.slow
def test_two_rows_train_then_reevaluate_to_the_same_figures(synth4, tmp_path, capsys):
    out, table = tmp_path / "ablation", tmp_path / "table.md"
    common = ["--val", str(synth4), "--out", str(out), "--rows", "0", "3"]
    main(["--train", str(synth4), *common, "--epochs", "1", "--max-steps", "1", "--input-size", "64",
          "--batch-size", "2", "--threads", "1", "--augment", "off", "--table", str(table)])
    first = json.loads((out / "ablation.json").read_text())
    assert [r["row"] for r in first["rows"]] == ["centre-Gaussian score (baseline)", "CIR + KQE + PQE"]
    for row in first["rows"]:
        assert {"AP", "spearman_matched", "kpm_AP", "kpm_spearman_matched", "train_seconds"} <= set(row)
        assert (out / f"row{3 if 'PQE' in row['row'] else 0}" / "last.pt").is_file()
    lines = table.read_text().splitlines()
    assert "AP, mean keypoint score" in lines[0] and sum(" min | " in s for s in lines) == 2

    (out / "row3" / "train_log.jsonl").unlink()  # nothing trains again: the log is not rewritten
    main([*common, "--evaluate-only"])
    second = json.loads((out / "ablation.json").read_text())
    assert second == first
    assert not (out / "row3" / "train_log.jsonl").exists()
    assert "CIR + KQE + PQE" in capsys.readouterr().out


def test_evaluate_only_without_trained_rows_is_one_error(tmp_path):
    with pytest.raises(SystemExit, match="lists no trained rows"):
        main(["--val", str(tmp_path), "--out", str(tmp_path / "none"), "--evaluate-only"])

"""The side-by-side benchmark alternates its systems round by round and reports medians; without Ultralytics it
says how to get it instead of failing."""
from realtime import bench_peer
from realtime.bench_peer import System, bench_side_by_side


def test_systems_alternate_within_each_round_after_one_warm_up_each():
    calls = []

    def system(name, frames):
        def run():
            calls.append(name)
            return frames
        return System(name, run)

    out = bench_side_by_side([system("a", 10), system("b", 20)], rounds=3, log=lambda line: None)
    assert calls == ["a", "b"] * 4  # warm-up, then three rounds, never two of one system in a row
    assert set(out) == {"a", "b"} and len(out["a"]["fps_all"]) == 3
    assert all(v > 0 for r in out.values() for v in r["fps_all"])


def test_without_ultralytics_the_section_is_skipped_with_a_line(monkeypatch, capsys):
    monkeypatch.setattr(bench_peer, "peers_available", lambda: False)
    assert bench_peer.run_peer_section(320, 2, 1, []) is None
    assert "ultralytics is not importable" in capsys.readouterr().out

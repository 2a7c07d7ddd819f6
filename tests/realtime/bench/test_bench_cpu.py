"""The CPU deployment benchmarks: the side-by-side one alternates its systems round by round and reports medians, and
without Ultralytics says how to get it; every deploy variant is a command line the pipeline accepts."""
from pathlib import Path

from realtime.bench import peer as bench_peer
from realtime.bench.peer import System, bench_side_by_side


def test_systems_alternate_within_each_round_after_one_warm_up_each():
    calls = []

    def system(name, frames):
        def run(clip):
            calls.append((name, clip.name))
            return frames
        return System(name, run)

    clip = Path("camera.mp4")
    out = bench_side_by_side([system("a", 10), system("b", 20)], rounds=3, log=lambda line: None, clip=clip)
    # warm-up, then three rounds, never two of one system in a row, all on the clip asked for
    assert calls == [("a", "camera.mp4"), ("b", "camera.mp4")] * 4
    assert set(out) == {"a", "b"} and len(out["a"]["fps_all"]) == 3
    assert all(v > 0 for r in out.values() for v in r["fps_all"])


def test_without_ultralytics_the_section_is_skipped_with_a_line(monkeypatch, capsys):
    monkeypatch.setattr(bench_peer, "peers_available", lambda: False)
    assert bench_peer.run_peer_section(320, 2, 1, []) is None
    assert "ultralytics is not importable" in capsys.readouterr().out


def test_the_cpu_record_names_the_model_the_flags_that_matter_and_the_kind():
    from models.export.auto import cpu_model

    cpu = bench_peer.cpu_record()
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu["model"] == cpu_model() and cpu["flags"] == [f for f in bench_peer.CPU_FLAGS if f in flags]
    assert cpu["kind"].startswith(cpu_model()) and ("no AMX" in cpu["kind"]) == ("amx_tile" not in flags)


def test_the_camera_clip_is_drawn_once_at_720p_and_then_reused(tmp_path, monkeypatch):
    import av
    from models.export.auto import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setitem(bench_peer.CAMERA_CLIP, "seconds", 1)  # 30 frames here; the benchmark's is 30 s
    clip = bench_peer.camera_clip()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert sum(1 for _ in container.decode(stream)) == 30
    assert bench_peer.clip_size(clip) == "1280x720" and [p.name for p in clip.parent.iterdir()] == [clip.name]
    stamp = clip.stat().st_mtime_ns
    assert bench_peer.camera_clip() == clip and clip.stat().st_mtime_ns == stamp


def test_every_deploy_variant_is_a_command_line_the_pipeline_accepts():
    from realtime.bench.deploy import all_variants
    from realtime.cli import build_parser

    variants = all_variants()
    assert len({v.name for v in variants}) == len(variants) == 12 and variants[-1].backend == "auto"
    for v in variants:
        args = build_parser().parse_args(["--source", "synth", *v.cli_args(threads=2, imgsz=320)])
        assert (args.backend, args.precision, args.rect, args.threads, args.infer_streams) == (
            v.backend, v.precision, v.shape == "rect", 2, v.streams)


def test_the_sinks_section_measures_every_sink_against_real_brokers_and_the_pipeline_with_and_without_them():
    from tests.realtime.brokers import missing
    from realtime.bench.sinks import run_sinks_section

    out = run_sinks_section(streams=2, fps=20, seconds=0.5, rounds=1, max_frames=30,
                            engine_args=["--backend", "torch", "--imgsz", "128", "--threads", "1"])
    rows = {r["sink"]: r for r in out["sinks"]}
    expected = {"stdout", "ws"} | ({"mqtt"} if not missing("mosquitto") else set()) | \
        ({"redis"} if not missing("redis-server") else set())
    assert set(rows) == expected
    for r in rows.values():
        assert r["delivered"] == r["messages"] >= 18 and r["received"] == r["delivered"] and r["dropped"] == 0
        assert 0 < r["cpu_ms_per_message"] < 50 and 0 < r["latency_p95_ms"] < 1000
    brokers = sorted(expected - {"stdout", "ws"})
    if brokers:  # alternating runs of the same clip: one without sinks, one with the broker sinks
        for how in ("full_speed", "paced"):  # the clip at full speed, then paced like cameras
            pipeline = out["pipeline"][how]
            assert list(pipeline["fps"]) == ["no sinks", " + ".join(brokers)] and pipeline["pace"] == (how == "paced")
            assert all(len(v) == 1 and v[0] > 0 for v in pipeline["fps"].values())
            fps = list(pipeline["fps_median"].values())
            assert pipeline["ratio"] == fps[1] / fps[0]
            assert all(0 < v < 10_000 for v in pipeline["e2e_p95_ms_median"].values())

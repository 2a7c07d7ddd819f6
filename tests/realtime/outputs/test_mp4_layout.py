"""The MP4 layout: fragmented while recording (a fragment per keyframe, a keyframe each second, each fragment
written whole), so a recording cut short plays up to its last whole fragment; a regular MP4 once closed (FFmpeg
>= 7.1); the classic layout on request."""
import shutil
import subprocess

import av
import pytest

from realtime.outputs.files import HYBRID_SINCE, Mp4Sink
from realtime.outputs.whole_writes import WholeWrites
from tests.realtime.helpers import decode_cut, mp4_boxes, pattern


def record(path, frames=75, fps=25.0, **kwargs):
    sink = Mp4Sink(path, **kwargs)
    on_disk = []  # the file's bytes after each frame
    for i in range(frames):
        sink.write(pattern(i, 120, 160), i / fps)
        on_disk.append(path.read_bytes())
    sink.close()
    return on_disk


def kinds(data: bytes) -> list[str]:
    return [kind for kind, _, _ in mp4_boxes(data)]


def test_the_file_on_disk_always_ends_on_a_whole_box(tmp_path):
    path = tmp_path / "a.mp4"
    on_disk = record(path)  # 3 s at 25 fps
    for data in on_disk:
        assert sum(size for _, _, size in mp4_boxes(data)) == len(data)
    recording = kinds(on_disk[-1])  # the third second's fragment is still in the making
    head = recording.index("moov") + 1
    assert recording[0] == "ftyp" and set(recording[1:head - 1]) <= {"free"}
    assert recording[head:] == ["moof", "mdat"] * 2  # a fragment per second
    assert len(decode_cut(path)) == 75


@pytest.mark.skipif(tuple(av.library_versions["libavformat"][:2]) < HYBRID_SINCE, reason="FFmpeg < 7.1")
def test_a_closed_file_is_a_regular_mp4(tmp_path):
    path = tmp_path / "a.mp4"
    record(path)
    assert kinds(path.read_bytes()) == ["ftyp", "free", "mdat", "moov"]  # the fragments now lie inside one mdat


def test_keyframes_each_second_of_the_video_clock_and_real_timestamps(tmp_path):
    path = tmp_path / "a.mp4"
    record(path, frames=60, fps=12.5)  # 4.8 s at 12.5 fps: keyframes at 0, 1.04, 2.08, ... (first frame >= 1 s on)
    with av.open(str(path)) as c:
        keys = [float(p.pts * p.time_base) for p in c.demux(video=0) if p.is_keyframe and p.pts is not None]
    assert {0.0, 1.04, 2.08, 3.12, 4.16} <= {round(k, 3) for k in keys}  # x264 may add scene cuts between
    assert decode_cut(path) == pytest.approx([i / 12.5 for i in range(60)], abs=1e-3)


def test_keyframe_interval_is_a_setting(tmp_path):
    path = tmp_path / "a.mp4"
    record(path, frames=100, keyframe_every=2.0)
    with av.open(str(path)) as c:
        keys = [float(p.pts * p.time_base) for p in c.demux(video=0) if p.is_keyframe and p.pts is not None]
    assert {0.0, 2.0} <= set(keys) and max(b - a for a, b in zip(keys, keys[1:])) <= 2.0  # x264 may add scene cuts


@pytest.mark.parametrize("fragment", [1, 2, 3])
def test_a_file_cut_inside_a_fragment_plays_up_to_the_fragments_before(tmp_path, fragment):
    data = record(tmp_path / "a.mp4", frames=100)[-1]  # 4 s: three whole fragments on disk before the end
    mdats = [(offset, size) for kind, offset, size in mp4_boxes(data) if kind == "mdat"]
    offset, size = mdats[fragment - 1]
    for cut in (offset, offset + 9, offset + size // 2, offset + size - 1):  # mdat header, samples, all but a byte
        (tmp_path / "cut.mp4").write_bytes(data[:cut])
        times = decode_cut(tmp_path / "cut.mp4")
        assert len(times) >= 25 * (fragment - 1), cut
        assert times == pytest.approx([i / 25 for i in range(len(times))], abs=1e-3)


def test_a_finished_file_seeks(tmp_path):
    path = tmp_path / "a.mp4"
    record(path)
    with av.open(str(path)) as c:
        assert c.duration == pytest.approx(3.0 * av.time_base, rel=0.02)
        stream = c.streams.video[0]
        c.seek(int(2.0 / stream.time_base), stream=stream)  # lands on the keyframe at or before 2.0 s
        first = next(c.decode(stream))
    assert float(first.pts * first.time_base) == pytest.approx(2.0, abs=1e-3)


def test_classic_layout_on_request_has_its_index_up_front(tmp_path):
    path = tmp_path / "a.mp4"
    on_disk = record(path, fragmented=False)
    kinds = [kind for kind, _, _ in mp4_boxes(path.read_bytes())]
    assert "moof" not in kinds and kinds.index("moov") < kinds.index("mdat")
    assert len(decode_cut(path)) == 75
    (tmp_path / "cut.mp4").write_bytes(on_disk[-1])
    with pytest.raises(av.error.InvalidDataError):  # the price: unclosed, it does not play at all
        av.open(str(tmp_path / "cut.mp4"))


def ffprobe(*args) -> str:
    return subprocess.run(["ffprobe", "-v", "error", *map(str, args)], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed (.ci/install-system-deps)")
def test_ffmpeg_plays_and_seeks_the_finished_file_and_the_file_cut_by_a_kill(tmp_path):
    path = tmp_path / "a.mp4"
    on_disk = record(path)
    (tmp_path / "killed.mp4").write_bytes(on_disk[60])  # the file as a kill after frame 60 of 75 leaves it
    entries = ["-count_frames", "-select_streams", "v:0", "-show_entries",
               "stream=nb_read_frames:format=duration", "-of", "default=nw=1"]
    for name, frames, seconds in (("a.mp4", 75, 3.0), ("killed.mp4", 50, 2.0)):
        found = dict(line.split("=") for line in ffprobe(*entries, tmp_path / name).split())
        assert int(found["nb_read_frames"]) == frames and float(found["duration"]) == pytest.approx(seconds, abs=0.01)
    seek = ffprobe("-read_intervals", "2.0%+#1", "-select_streams", "v:0", "-show_entries",
                   "frame=pts_time,key_frame", "-of", "csv=p=0", path)
    assert seek == "1,2.000000"  # a seek to 2.0 s lands on the keyframe there


def test_every_state_the_file_passes_through_while_closing_plays(tmp_path, monkeypatch):
    """A kill during ``close()`` (last fragment, appended index, header patch: one write each) loses nothing."""
    states = []
    commit = WholeWrites.commit

    def commit_and_keep(self):
        commit(self)
        states.append(self.path.read_bytes())

    monkeypatch.setattr(WholeWrites, "commit", commit_and_keep)
    sink = Mp4Sink(tmp_path / "a.mp4")
    for i in range(75):
        sink.write(pattern(i, 120, 160), i / 25)
    before = len(states)
    sink.close()
    assert len(states) > before
    for k, data in enumerate(states[before - 1:]):
        (tmp_path / "state.mp4").write_bytes(data)
        assert len(decode_cut(tmp_path / "state.mp4")) == (50 if k == 0 else 75), k

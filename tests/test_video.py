"""Frame readers: real videos and frame folders, random access equals sequential decoding, clear errors."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from conftest import shared_data

from stdpose.data.records import Frame, Video
from stdpose.data.video import FrameIndexError, VideoFileReader, VideoFrames, open_frames
from stdpose.errors import DataError

CLIP = ("posetrack18_samples", "videos", "000001_mpiinew_test")


@pytest.mark.realdata
def test_vtest_avi_properties_and_random_access():
    reader = open_frames(shared_data("opencv_samples", "vtest.avi"), cache_size=4)
    assert isinstance(reader, VideoFileReader)
    assert len(reader) == 795 and reader.fps == pytest.approx(10.0) and reader.size == (768, 576)
    # decode a window sequentially with a fresh reader, then compare with jumps (backwards, far forwards)
    fresh = open_frames(reader.path, cache_size=0)
    sequential = [fresh[i] for i in range(0, 60)]
    for i in (59, 3, 40, 0, 57, 12):
        frame = reader[i]
        assert frame.shape == (576, 768, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, sequential[i])
    far = reader[700]  # a seek, checked against decoding every frame up to it (not against another seek)
    cap = cv2.VideoCapture(str(reader.path))
    for _ in range(700):
        assert cap.grab()
    ok, expected = cap.read()
    cap.release()
    assert ok
    np.testing.assert_array_equal(far, expected)
    assert reader[794].shape == (576, 768, 3)
    with pytest.raises(FrameIndexError, match="out of range"):
        reader[795]
    with pytest.raises(IndexError):
        reader[-1]


@pytest.mark.realdata
def test_posetrack_clip_folder_and_mp4_agree():
    folder = open_frames(shared_data(*CLIP))
    video = open_frames(shared_data(*CLIP, "000001_mpiinew_test.mp4"))
    assert len(folder) == 10 and folder.size == (1280, 720) and folder.fps > 0
    assert len(video) == 5 and video.size == (1280, 720) and video.fps == pytest.approx(30.0)
    assert [p.name for p in folder.files] == [f"{i:06d}.jpg" for i in range(10)]
    for i in range(len(video)):
        diffs = [np.abs(video[i].astype(np.float32) - folder[j]).mean() for j in range(len(folder))]
        assert int(np.argmin(diffs)) == i and diffs[i] < 5.0  # the mp4 holds the first 5 frames, re-encoded


@pytest.mark.realdata
def test_cache_returns_copies_and_readers_pickle():
    reader = open_frames(shared_data(*CLIP), cache_size=2)
    a = reader[1]
    a[:] = 0  # drawing on a frame must not corrupt the cache
    assert reader[1].any()
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone[2], reader[2])
    video = open_frames(shared_data(*CLIP, "000001_mpiinew_test.mp4"))
    video[3]
    clone = pickle.loads(pickle.dumps(video))  # the open capture is dropped and reopened
    np.testing.assert_array_equal(clone[3], video[3])


@pytest.mark.realdata
def test_video_frames_reads_annotated_video():
    root = shared_data("posetrack18_samples")
    video = Video(name="000001_mpiinew_test", frames=[
        Frame(index=i, file_name=f"videos/000001_mpiinew_test/{i:06d}.jpg") for i in range(3)])  # fmt: skip
    frames = VideoFrames(video, root)
    assert len(frames) == 3 and frames.size == (1280, 720)
    np.testing.assert_array_equal(frames[2], cv2.imread(str(root / video.frames[2].file_name)))
    video.frames.append(Frame(index=3, file_name="videos/000001_mpiinew_test/missing.jpg"))
    with pytest.raises(DataError, match="missing.jpg.*image file not found"):
        VideoFrames(video, root)[3]


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match="no such video"):
        open_frames(tmp_path / "nothing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DataError) as info:
        open_frames(garbage)
    assert "garbage.mp4" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no images"):
        open_frames(empty)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame2.png"), np.full((8, 10, 3), 2, np.uint8))
    cv2.imwrite(str(folder / "frame10.png"), np.full((8, 10, 3), 10, np.uint8))
    (folder / "frame11.png").write_bytes(b"\x89PNG broken")
    reader = open_frames(folder)
    assert [p.name for p in reader.files] == ["frame2.png", "frame10.png", "frame11.png"]  # natural order
    assert reader[1][0, 0, 0] == 10 and reader.size == (10, 8)
    with pytest.raises(DataError, match="frame11.png.*cannot decode"):
        reader[2]


@pytest.mark.realdata
def test_truncated_video_fails_cleanly(tmp_path):
    data = shared_data("opencv_samples", "vtest.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    try:
        reader = open_frames(cut, cache_size=0)
    except DataError as exc:
        assert "cut.avi" in str(exc)
        return
    decoded, failed = 0, 0
    for i in range(0, len(reader), 100):
        try:
            assert reader[i].shape == (576, 768, 3)
            decoded += 1
        except DataError as exc:
            assert "cut.avi" in str(exc) and f"frame {i}" in str(exc)
            failed += 1
    # the file keeps its first third: early frames decode, the lost ones must fail with the message
    assert decoded > 0 and failed > 0 and decoded + failed == len(range(0, len(reader), 100))


def test_single_image_and_synthetic_video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    reader = open_frames(path, cache_size=3)
    assert len(reader) == 20 and reader.fps == pytest.approx(12.0) and reader.size == (64, 48)
    assert [round(reader[i].mean() / 10) for i in (5, 19, 0, 7, 7)] == [5, 19, 0, 7, 7]
    assert len(list(reader)) == 20
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((5, 6, 3), np.uint8))
    single = open_frames(image, fps=3)
    assert len(single) == 1 and single.size == (6, 5) and single.fps == 3

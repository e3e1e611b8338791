"""TripletDataset items (shapes, image/label alignment under augmentation, auxiliary labels) and the DataModule."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import shared_data

from stdpose.data.dataset import PoseDataModule, TripletDataset, collate_triplets, person_box
from stdpose.data.formats import read_annotations, read_posetrack18, write_posetrack18
from stdpose.data.records import Frame, Person, Video
from stdpose.data.transforms import AugmentConfig, box_to_center_size, decode_heatmaps, heatmap_to_image
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import NUM_SLOTS, SLOT

W_IMG, H_IMG = 160, 120
INPUT_HW = (64, 48)
HEATMAP_HW = (16, 12)
RED_JOINT = SLOT["left_wrist"]


def _pose(t: int, track: int) -> np.ndarray:
    """A person standing at x0 + 2t, 17 slots (ears unannotated)."""
    x0 = 45.0 + 2.0 * t if track == 0 else 115.0 - 1.5 * t
    offsets = {
        "nose": (0, 14), "head_bottom": (0, 22), "head_top": (0, 6), "left_shoulder": (8, 28),
        "right_shoulder": (-8, 28), "left_elbow": (12, 42), "right_elbow": (-12, 42), "left_wrist": (16, 55),
        "right_wrist": (-15, 54), "left_hip": (6, 62), "right_hip": (-6, 62), "left_knee": (7, 82),
        "right_knee": (-7, 82), "left_ankle": (8, 100), "right_ankle": (-8, 100),
    }  # fmt: skip
    kps = np.zeros((NUM_SLOTS, 3))
    for name, (dx, dy) in offsets.items():
        kps[SLOT[name]] = (x0 + dx + 0.3 * np.sin(t + track), dy + 4.0, 1)
    return kps


def make_toy(root: Path, num_frames: int = 12, labeled=None, drop=()) -> Path:
    """Frames with a red 5x5 blob on track 0's left wrist, written as PoseTrack18 JSON + JPEG-free PNG frames."""
    labeled = set(range(num_frames)) if labeled is None else set(labeled)
    frames = []
    for t in range(num_frames):
        image = np.full((H_IMG, W_IMG, 3), 60, np.uint8)
        persons = []
        for track in (0, 1):
            if (t, track) in drop:
                continue
            kps = _pose(t, track)
            for x, y, v in kps:
                if v > 0:
                    cv2.circle(image, (int(round(x)), int(round(y))), 1, (200, 200, 40), -1)  # cyan-ish, no red
            if track == 0:
                x, y = kps[RED_JOINT, :2]
                xi, yi = int(round(x)), int(round(y))
                image[yi - 2 : yi + 3, xi - 2 : xi + 3] = (0, 0, 255)
                kps[RED_JOINT, :2] = (xi, yi)
            persons.append(Person(keypoints=kps, track_id=track))
        name = f"images/toy/000007_toy/{t:06d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), image)
        frames.append(Frame(index=t, file_name=name, persons=persons if t in labeled else [],
                            is_labeled=t in labeled, width=W_IMG, height=H_IMG))
    path = root / "annotations" / "toy.json"
    write_posetrack18(Video(name="000007_toy", frames=frames, vid_id="000007"), path)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[list[Video], Path]:
    root = tmp_path_factory.mktemp("toy")
    path = make_toy(root)
    return read_posetrack18(path), root


def _red_centroid(frame_chw: torch.Tensor) -> np.ndarray | None:
    red = frame_chw[0].numpy()  # RGB-normalised: red channel; the blob is the only strongly red thing
    mask = red > 0.0
    if mask.sum() == 0:
        return None
    ys, xs = np.nonzero(mask)
    wts = red[ys, xs]
    return np.array([(xs * wts).sum(), (ys * wts).sum()]) / wts.sum()


def test_item_shapes_and_meta(toy):
    videos, root = toy
    ds = TripletDataset(videos, root, task="propagation", input_size_hw=INPUT_HW, interval=4, train=False, sigma=1.0)
    item = ds[0]
    assert item["frames"].shape == (3, 3, *INPUT_HW) and item["frames"].dtype == torch.float32
    assert item["aux_heatmaps"].shape == (2, NUM_SLOTS, *HEATMAP_HW) and item["aux_weights"].shape == (2, NUM_SLOTS)
    assert item["target"].shape == (NUM_SLOTS, *HEATMAP_HW) and item["target_weight"].shape == (NUM_SLOTS,)
    meta = item["meta"]
    assert set(meta) >= {"center", "size", "rotation", "video_index", "frame_index", "left_index", "right_index",
                         "person_index", "track_id", "score"}
    assert meta["center"].shape == (2,) and meta["size"].shape == (2,) and meta["rotation"].shape == ()
    assert meta["score"] == 1.0 and meta["track_id"] in (0, 1)
    assert item["target_weight"][SLOT["left_ear"]] == 0 and item["target_weight"].sum() == 15
    # the size keeps the input's aspect ratio and is the box enlarged by 25%
    assert meta["size"][0] / meta["size"][1] == pytest.approx(48 / 64)
    batch = collate_triplets([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 3, 3, *INPUT_HW) and batch["meta"]["frame_index"].shape == (2,)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a copy without open readers
    torch.testing.assert_close(clone[3]["frames"], ds[3]["frames"])


def test_propagation_val_keys_and_aux_labels(toy):
    videos, root = toy
    ds = TripletDataset(videos, root, task="propagation", input_size_hw=INPUT_HW, interval=4, train=False, sigma=1.0)
    # labels kept at 0, 4, 8 (every 4 of 12 labeled frames); every other labeled frame is a key frame
    assert sorted(f for _, f in ds.key_frames()) == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert len(ds) == 9 * 2 and ds.skipped.total() == 0
    for i in range(len(ds)):
        item = ds[i]
        m = item["meta"]
        key, left, right = int(m["frame_index"]), int(m["left_index"]), int(m["right_index"])
        expected = {1: (0, 4), 2: (0, 4), 3: (0, 4), 5: (4, 8), 6: (4, 8), 7: (4, 8), 9: (8, 8), 10: (8, 8),
                    11: (8, 8)}[key]  # fmt: skip
        assert (left, right) == expected
        track = int(m["track_id"])
        coords, _ = decode_heatmaps(item["aux_heatmaps"].numpy())  # (2, J, 2)
        for side, f in enumerate((left, right)):
            gt = next(p for p in videos[0].frames[f].persons if p.track_id == track).keypoints
            back = heatmap_to_image(coords[side][None], m["center"][None].numpy(), m["size"][None].numpy(),
                                    HEATMAP_HW)[0]
            vis = item["aux_weights"][side].numpy() > 0
            assert vis.sum() >= 12
            assert np.abs(back[vis] - gt[vis, :2]).max() < 0.1  # labels of the same track, in the key crop


def test_image_and_labels_stay_aligned_under_augmentation(toy):
    videos, root = toy
    aug = AugmentConfig(rotation=30, rotation_prob=1.0, flip_prob=0.5, half_body=False)
    ds = TripletDataset(videos, root, task="propagation", input_size_hw=INPUT_HW, interval=4, train=True,
                        augment=aug, sigma=1.0)
    torch.manual_seed(0)
    checked, flipped = 0, 0
    frames = videos[0].frames
    track0 = [i for i, s in enumerate(ds.samples) if frames[s.frame_index].persons[s.person_index].track_id == 0]
    for i in track0 * 2:
        item = ds[i]
        m = item["meta"]
        slot = SLOT["right_wrist"] if bool(m["flip"]) else RED_JOINT  # a flip swaps left and right
        if item["target_weight"][slot] == 0:
            continue
        coords, _ = decode_heatmaps(item["target"][None].numpy())
        expected = (coords[0, slot] + 0.5) * 4 - 0.5  # heatmap -> input pixels
        found = _red_centroid(item["frames"][1])
        assert found is not None
        assert np.abs(found - expected).max() < 1.0, (found, expected, m)
        checked += 1
        flipped += bool(m["flip"])
        assert abs(float(m["rotation"])) <= 30
    assert checked >= 10 and 0 < flipped < checked
    # auxiliary distances are redrawn per item, as at inference with labels every 4 frames
    gaps = set()
    for _ in range(12):
        m = ds[10]["meta"]
        k, left, right = int(m["frame_index"]), int(m["left_index"]), int(m["right_index"])
        gaps.add((k - left, right - k))
    assert len(gaps) > 1 and all(a + b == 4 and a > 0 and b > 0 for a, b in gaps)


def test_estimation_neighbours_and_zero_aux(toy):
    videos, root = toy
    ds = TripletDataset(videos, root, task="estimation", input_size_hw=INPUT_HW, train=False)
    assert len(ds) == 24
    for i in (0, len(ds) - 1, 7):
        m = ds[i]["meta"]
        k = int(m["frame_index"])
        assert int(m["left_index"]) == max(k - 1, 0) and int(m["right_index"]) == min(k + 1, 11)
        assert not ds[i]["aux_heatmaps"].any() and not ds[i]["aux_weights"].any()


def test_aux_fallback_to_nearest_label_holding_the_track(tmp_path):
    path = make_toy(tmp_path, drop={(4, 1), (0, 1), (8, 1)})  # track 1 missing in the label frames 0, 4 and 8
    videos = read_posetrack18(path)
    ds = TripletDataset(videos, tmp_path, task="propagation", input_size_hw=INPUT_HW, interval=4, train=False)
    for i in range(len(ds)):
        item = ds[i]
        if int(item["meta"]["track_id"]) == 1:
            assert not item["aux_weights"].any()  # no label-given frame holds track 1: zeros
        else:
            assert item["aux_weights"].sum() > 0
    path = make_toy(tmp_path / "b", drop={(4, 1)})
    ds = TripletDataset(read_posetrack18(path), tmp_path / "b", task="propagation", input_size_hw=INPUT_HW,
                        interval=4, train=False)
    i = next(i for i, s in enumerate(ds.samples) if s.frame_index == 5
             and ds.videos[0].frames[5].persons[s.person_index].track_id == 1)
    item = ds[i]
    assert (int(item["meta"]["left_index"]), int(item["meta"]["right_index"])) == (4, 8)
    # frame 4 lacks track 1: the nearest label-given frames holding it are 0 and 8; the left side's (0) is used
    assert item["aux_weights"][0].sum() == 15
    coords, _ = decode_heatmaps(item["aux_heatmaps"][:1].numpy())
    m = item["meta"]
    back = heatmap_to_image(coords, m["center"][None].numpy(), m["size"][None].numpy(), HEATMAP_HW)[0]
    gt0 = next(p for p in ds.videos[0].frames[0].persons if p.track_id == 1).keypoints
    vis = gt0[:, 2] > 0
    assert np.abs(back[vis] - gt0[vis, :2]).max() < 0.1


def test_segment_crop_is_shared_by_keys_between_the_same_labels(toy):
    videos, root = toy
    ds = TripletDataset(videos, root, task="propagation", input_size_hw=INPUT_HW, interval=4, train=False,
                        crop="segment")

    crops = {}
    for i, s in enumerate(ds.samples):
        track = videos[0].frames[s.frame_index].persons[s.person_index].track_id
        if s.triplet.left == 0 and s.triplet.right == 4:
            m = ds[i]["meta"]
            crops.setdefault(track, set()).add((tuple(m["center"].tolist()), tuple(m["size"].tolist())))
            # the crop comes from the union of the track's boxes in the two labeled frames only
            aux = [person_box(p) for f in (0, 4) for p in videos[0].frames[f].persons if p.track_id == track]
            x0, y0 = min(b[0] for b in aux), min(b[1] for b in aux)
            x1, y1 = max(b[0] + b[2] for b in aux), max(b[1] + b[3] for b in aux)
            center, _ = box_to_center_size((x0, y0, x1 - x0, y1 - y0), INPUT_HW[1] / INPUT_HW[0])
            np.testing.assert_allclose(m["center"].numpy(), center, atol=1e-4)
    assert set(crops) == {0, 1} and all(len(v) == 1 for v in crops.values())


def test_missing_image_and_skips(tmp_path):
    path = make_toy(tmp_path, num_frames=6)
    data = json.loads(path.read_text())
    data["annotations"][0]["keypoints"] = [0] * 51  # a person with no annotated joint
    data["annotations"][0].pop("bbox", None)
    path.write_text(json.dumps(data))
    videos = read_posetrack18(path)
    (tmp_path / videos[0].frames[3].file_name).unlink()
    ds = TripletDataset(videos, tmp_path, task="estimation", input_size_hw=INPUT_HW, train=False)
    assert ds.skipped["no_annotated_joint"] == 1 and len(ds) == 11
    i = next(i for i, s in enumerate(ds.samples) if s.frame_index == 3)
    with pytest.raises(DataError, match="000003.png.*image file not found"):
        ds[i]
    with pytest.raises(ConfigError, match="task"):
        TripletDataset(videos, tmp_path, task="tracking")
    with pytest.raises(ConfigError, match="crop"):
        TripletDataset(videos, tmp_path, crop="whole")
    with pytest.raises(ConfigError, match="multiples"):
        TripletDataset(videos, tmp_path, input_size_hw=(65, 48))


def test_datamodule_from_config(toy, tmp_path):
    videos, root = toy
    split = {"annotations": str(root / "annotations"), "image_root": str(root)}
    cfg = {"train": split, "val": split, "task": "propagation", "interval": 4, "input_size": list(INPUT_HW),
           "sigma": 1.0, "batch_size": 4, "num_workers": 0, "crop": "key", "augment": {"rotation": 20}}
    dm = PoseDataModule(cfg)
    dm.setup("fit")
    assert dm.augment.rotation == 20
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (4, 3, 3, *INPUT_HW)
    assert isinstance(batch["meta"], dict) and batch["meta"]["center"].shape == (4, 2)
    val = next(iter(dm.val_dataloader()))
    assert val["meta"]["rotation"].abs().sum() == 0  # no augmentation in validation
    assert len(dm.val_dataset.key_frames()) == 9 and dm.val_dataset.videos[0].name == "000007_toy"
    with pytest.raises(ConfigError, match=r"unknown data keys \['batchsize'\]; allowed: .*batch_size"):
        PoseDataModule({**cfg, "batchsize": 3})
    with pytest.raises(ConfigError, match="data.train"):
        PoseDataModule({**cfg, "train": {"annotation": "x", "image_root": "y"}})
    with pytest.raises(ConfigError, match="augment"):
        PoseDataModule({**cfg, "augment": {"spin": 1}})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"data": cfg, "model": {"backbone": "nano"}}))
    dm = PoseDataModule.from_yaml(tmp_path / "exp.yaml")
    dm.setup("validate")
    assert dm.train_dataset is None and len(dm.val_dataset) == 18


@pytest.mark.realdata
def test_real_posetrack18_samples_make_items():
    root = shared_data("posetrack18_samples")
    videos = read_annotations(root / "annotations" / "val")
    ds = TripletDataset(videos, root, task="estimation", input_size_hw=(128, 96), train=False)
    assert len(ds) == 14 and ds.skipped.total() == 0
    i = next(i for i, s in enumerate(ds.samples) if videos[s.video_index].frames[0].persons[s.person_index].track_id
             == 10 and videos[s.video_index].vid_id == "012834")  # box partly above the image (y < 0)
    item = ds[i]
    m = item["meta"]
    assert (int(m["left_index"]), int(m["frame_index"]), int(m["right_index"])) == (0, 0, 0)
    assert torch.equal(item["frames"][0], item["frames"][1])  # one-frame video: clamped neighbours
    person = videos[m["video_index"]].frames[0].persons[int(m["person_index"])]
    coords, _ = decode_heatmaps(item["target"][None])
    back = heatmap_to_image(coords, m["center"][None], m["size"][None], (32, 24))[0].numpy()
    vis = item["target_weight"].numpy() > 0
    assert vis.sum() == person.annotated.sum()
    assert np.abs(back[vis] - person.keypoints[vis, :2]).max() < 0.5  # image pixels (crop scale ~ 2.7 px/px)

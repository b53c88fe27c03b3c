"""Training: flip bookkeeping, crop targets on real warps, losses, one real training step and resume.

Everything runs on generated faces (a drawn 68-point face written as image + .pts), no shared data.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge.errors import ConfigError, ModelError
from edge.model.atpn import load_checkpoint
from edge.model.spec import ModelSpec
from edge.model.crop import crop_from_landmarks, eye_centers, mirror_permutation
from edge.train.augment import flip_patch
from edge.train.boxes import negative_box
from edge.train.checkpoint import load_training_state
from edge.train.config import AugmentConfig, train_config_from_dict
from edge.train.data import CropDataset
from edge.eval.datasets import FaceRecord, write_pts, write_teacher_npz
from edge.train.losses import point_weights, total_loss, wing
from edge.train.face_sets import FaceSet
from edge.train.train import run, training_device


def template_face() -> np.ndarray:
    """A left-right symmetric 68-point face in [-1,1] units, in the 300-W point order."""
    phi = np.linspace(-0.2, math.pi + 0.2, 17)
    jaw = np.stack([-np.cos(phi), 1.1 * np.sin(phi)], 1)
    bx = np.linspace(0.15, 0.75, 5)
    brow_y = -0.55 - 0.1 * np.sin(np.linspace(0.3, 2.8, 5))
    brows = np.concatenate([np.stack([-bx[::-1], brow_y], 1), np.stack([bx, brow_y[::-1]], 1)])
    bridge = np.stack([np.zeros(4), np.linspace(-0.4, 0.05, 4)], 1)
    nostrils = np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.2)], 1)
    a = np.radians([180, 120, 60, 0, -60, -120])
    eye = np.stack([0.15 * np.cos(a), -0.07 * np.sin(a)], 1)
    eyes = np.concatenate([eye + (-0.4, -0.3), eye + (0.4, -0.3)])
    m = np.radians(np.r_[np.arange(180, -1, -30), np.arange(-30, -151, -30)])
    outer = np.stack([0.35 * np.cos(m), 0.55 - 0.15 * np.sin(m)], 1)
    i = np.radians([180, 135, 90, 45, 0, -45, -90, -135])
    inner = np.stack([0.25 * np.cos(i), 0.55 - 0.07 * np.sin(i)], 1)
    return np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])


def synthetic_face(rng: np.random.Generator, size: int = 160):
    """A drawn face at a random place, scale and roll: (BGR image, [68,2] float32 landmarks)."""
    a = math.radians(rng.uniform(-20, 20))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = template_face() @ rot.T * rng.uniform(0.22, 0.3) * size + rng.uniform(0.4, 0.6, 2) * size
    image = np.full((size, size, 3), rng.integers(0, 120, 3), np.uint8)
    cv2.fillPoly(image, [np.round(pts[:17]).astype(np.int32)], (150, 180, 220))
    for lo, hi, closed in ((17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
                           (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True)):
        cv2.polylines(image, [np.round(pts[lo:hi]).astype(np.int32)], closed, (40, 30, 30), 1)
    return image, pts.astype(np.float32)


def write_faces(folder, n: int, seed: int = 0):
    """n drawn faces as image + .pts (the HELEN layout) and teacher poses for them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        image, pts = synthetic_face(rng)
        cv2.imwrite(str(folder / f"face{k}.jpg"), image)
        write_pts(str(folder / f"face{k}.pts"), pts)
        files.append(f"face{k}.jpg")
    return files


def test_flip_permutation_mirrors_the_symmetric_face_onto_itself():
    face, perm = template_face(), mirror_permutation(68)
    mirrored = face[perm] * (-1.0, 1.0)
    np.testing.assert_allclose(mirrored, face, atol=1e-12)
    np.testing.assert_array_equal(perm[perm], np.arange(68))


def test_flip_patch_twice_is_identity_and_swaps_the_eyes():
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    pts = rng.uniform(0, 111, (68, 2)).astype(np.float32)
    pose = np.array([20.0, -5.0, 8.0], np.float32)
    p1, l1, q1 = flip_patch(patch, pts, pose)
    np.testing.assert_allclose(q1, [-20.0, -5.0, -8.0])
    right_before, left_before = eye_centers(pts)
    right_after, _ = eye_centers(l1)
    np.testing.assert_allclose(right_after, [111 - left_before[0], left_before[1]], atol=1e-4)
    p2, l2, q2 = flip_patch(p1, l1, q1)
    np.testing.assert_array_equal(p2, patch)
    np.testing.assert_allclose(l2, pts, atol=1e-4)
    np.testing.assert_allclose(q2, pose)


@pytest.mark.parametrize("flip, point, target_index, pad", [
    (0.0, 36, 36, 0.0), (1.0, 36, 45, 0.0), (1.0, 48, 54, 0.0), (0.0, 8, 8, 0.5),  # pad: an edge-padded source
])
def test_crop_targets_land_on_the_drawn_point(flip, point, target_index, pad):
    """A dot drawn at one landmark appears in the augmented crop where that sample's target says."""
    rng = np.random.default_rng(2)
    _, pts = synthetic_face(rng, 200)
    pts = np.round(pts).astype(np.float32)
    image = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(image, (int(pts[point, 0]), int(pts[point, 1])), 2, (255, 255, 255), -1)
    off = dict(colour_prob=0.0, gray_prob=0.0, blur_prob=0.0, occlusion_prob=0.0, jpeg_prob=0.0, noise_prob=0.0)
    augment = AugmentConfig(flip_prob=flip, **off)
    records = [FaceRecord("unused.jpg", pts, np.array([10.0, 0.0, 0.0], np.float32))]
    ds = CropDataset([FaceSet("drawn", records, 1.0, 1.0, True, edge_pad=pad)], ModelSpec(), augment, negative_fraction=0.0)
    ds._images["unused.jpg"] = image
    for _ in range(5):
        sample = ds[0]
        bright = sample["crop"].mean(0) > 0.5
        ys, xs = np.nonzero(bright)
        assert len(xs) > 0, "the dot left the crop"
        target = sample["landmarks"][target_index] * 112
        assert abs(xs.mean() - target[0]) < 1.0 and abs(ys.mean() - target[1]) < 1.0
        assert sample["track"] == 1.0 and sample["pose_mask"] == 1.0
        assert sample["pose"][0] == pytest.approx(-10.0 if flip else 10.0)


def test_negative_boxes_lose_the_face():
    rng = np.random.default_rng(3)
    _, pts = synthetic_face(rng, 400)
    base = crop_from_landmarks(pts, 1.6)
    for _ in range(200):
        box = negative_box(pts, (400, 400), 1.6, rng)
        if box is None:
            continue
        shift = math.hypot(box.cx - base.cx, box.cy - base.cy) / base.size
        scale = box.size / base.size
        turn = abs((box.angle_deg - base.angle_deg + 180) % 360 - 180)
        assert shift >= 0.44 or scale >= 2.2 or scale <= 0.8 or turn >= 89.9


def test_wing_is_continuous_and_log_like_below_w():
    w, eps = 0.09, 0.018
    x = torch.tensor([w - 1e-7, w + 1e-7])
    lo, hi = wing(x, w, eps)
    assert float(lo) == pytest.approx(float(hi), abs=1e-5)
    assert float(wing(torch.tensor(eps), w, eps)) == pytest.approx(w * math.log(2.0))


def test_unknown_config_key_is_one_line_error():
    with pytest.raises(ConfigError, match="optim.epochz"):
        train_config_from_dict({"optim": {"epochz": 3}})
    with pytest.raises(ConfigError, match="model.crop_scale must be in"):  # a crop smaller than the face
        train_config_from_dict({"model": {"crop_scale": 0.9}})


def test_training_device_auto_falls_back_to_cpu_and_cuda_without_a_gpu_is_one_line():
    optim = train_config_from_dict({}).optim
    assert optim.device == "auto"
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert training_device(optim).type == want
    with pytest.raises(ConfigError, match="optim.device"):
        train_config_from_dict({"optim": {"device": "gpu"}})
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            training_device(train_config_from_dict({"optim": {"device": "cuda"}}).optim)


def test_one_training_step_then_resume_continues_the_epoch_count(tmp_path):
    files = write_faces(tmp_path / "faces", 3)
    teacher = tmp_path / "teacher"
    pose = np.array([[10, 0, 0], [-15, 5, 3], [0, 0, -4]], np.float32)
    for name in ("helen_train", "helen_test"):
        write_teacher_npz(str(teacher / f"{name}.npz"), str(tmp_path / "faces"), files,
                          np.zeros((3, 68, 2), np.float32), pose, np.ones(3, bool))
    cfg = train_config_from_dict({
        "data": {"helen_train": str(tmp_path / "faces"), "helen_test": str(tmp_path / "faces"),
                 "teacher_dir": str(teacher), "samples_per_epoch": 4, "cache_helen": False},
        "optim": {"epochs": 1, "batch_size": 4, "workers": 0, "warmup_steps": 1},
        "output": {"dir": str(tmp_path / "run"), "export": str(tmp_path / "atpn68.pt")},
    })
    metrics = run(cfg)
    assert math.isfinite(metrics["train_loss"]) and 0.0 <= metrics["nme"] < 1.0 and "pose_mean_mae" in metrics
    first = load_training_state(str(tmp_path / "run" / "last.pt"))
    assert (first["epoch"], first["step"]) == (1, 1)
    exported = load_checkpoint(str(tmp_path / "atpn68.pt"))
    assert torch.equal(exported.state_dict()["landmark_out.weight"], first["model"]["landmark_out.weight"])
    assert exported.state_dict()["landmark_out.weight"].abs().sum() > 0  # it trained: the zero init moved
    longer = train_config_from_dict({**_as_dict(cfg), "optim": {**_as_dict(cfg)["optim"], "epochs": 2}})
    run(longer, resume=str(tmp_path / "run" / "last.pt"))
    second = load_training_state(str(tmp_path / "run" / "last.pt"))
    assert (second["epoch"], second["step"]) == (2, 2)
    # Fine-tuning: a new run (epoch 0, fresh optimizer) that starts from the exported weights, here
    # for tighter, larger crops (crop scale and input size travel in the spec to the ONNX export and the
    # runtime). Every layer carries over but the regression head's global 7x7, which becomes 8x8.
    tuned = train_config_from_dict({**_as_dict(cfg), "output": {"dir": str(tmp_path / "tune"), "export": None},
                                    "optim": {**_as_dict(cfg)["optim"], "lr": 1e-12},
                                    "model": {"crop_scale": 1.45, "input_size": 128}})
    run(tuned, init=str(tmp_path / "atpn68.pt"))
    third = load_training_state(str(tmp_path / "tune" / "last.pt"))
    assert (third["epoch"], third["step"]) == (1, 1)
    tuned_spec = ModelSpec.from_json(third["spec"])
    assert (tuned_spec.crop_scale, tuned_spec.input_size, tuned_spec.heatmap_size) == (1.45, 128, 32)
    init_weights = load_checkpoint(str(tmp_path / "atpn68.pt")).state_dict()
    assert torch.allclose(third["model"]["stem.0.0.weight"], init_weights["stem.0.0.weight"], atol=1e-9)
    assert third["model"]["landmark_head.1.0.weight"].shape[-2:] == (8, 8)
    # output.keep: last exports the final epoch whatever validation says (lr ~0 keeps it the init's)
    last = train_config_from_dict({**_as_dict(tuned), "output": {"dir": str(tmp_path / "last"), "keep": "last",
                                                                 "export": str(tmp_path / "last.pt")}})
    run(last, init=str(tmp_path / "atpn68.pt"))
    assert load_checkpoint(str(tmp_path / "last.pt")).spec.crop_scale == 1.45
    start = init_weights["landmark_out.weight"]
    assert torch.allclose(third["model"]["landmark_out.weight"], start, atol=1e-9)  # lr ~0: still the init weights
    with pytest.raises(ModelError, match="not a checkpoint"):
        run(tuned, init=str(tmp_path / "tune" / "metrics.jsonl"))


def _as_dict(cfg):
    import dataclasses

    return dataclasses.asdict(cfg)


def test_holdout_validates_on_train_faces_that_training_never_draws(tmp_path):
    from edge.errors import DatasetError
    from edge.train.face_sets import training_sources, validation_records

    write_faces(tmp_path / "faces", 6)
    data = {"helen_train": str(tmp_path / "faces"), "helen_test": str(tmp_path / "missing"),
            "teacher_dir": str(tmp_path / "none")}
    cfg = train_config_from_dict({"data": {**data, "holdout": 2}}).data
    trained = [r.image_path for r in training_sources(cfg)[0].records]
    held = [r.image_path for r in validation_records(cfg)]
    assert len(trained) == 4 and len(held) == 2 and not set(trained) & set(held)
    assert held == [r.image_path for r in validation_records(cfg)]  # the same faces on every run
    with pytest.raises(DatasetError, match="hold out fewer"):
        training_sources(train_config_from_dict({"data": {**data, "holdout": 6}}).data)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("train_*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_training_recipes_load(path):
    from edge.train.config import load_train_config

    cfg = load_train_config(str(path))
    assert cfg.output.export is None or cfg.output.export.startswith("weights/")


def test_weight_average_is_the_running_mean_and_survives_a_checkpoint():
    from edge.train.averaging import WeightAverage

    states = [{"w": torch.tensor([1.0, 2.0]) * k, "n": torch.tensor(k)} for k in (1, 2, 6)]
    first = WeightAverage()
    first.add(states[0])
    resumed = WeightAverage.from_checkpoint(first.to_checkpoint())  # a run stopped after one epoch
    for s in states[1:]:
        resumed.add(s)
    assert resumed.count == 3
    assert torch.allclose(resumed.mean["w"], torch.tensor([3.0, 6.0]))
    assert int(resumed.mean["n"]) == 6  # counters are taken, not averaged
    assert torch.equal(states[0]["w"], torch.tensor([1.0, 2.0]))  # the caller's tensors are not modified


def test_remeasured_batch_norm_holds_the_mean_and_variance_of_all_batches():
    from edge.train.averaging import remeasure_batch_norm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    net[1].running_mean.fill_(5.0)  # stale statistics from other weights
    batches = [torch.randn(8, 3, 10, 10) * (k + 1) + k for k in range(3)]
    remeasure_batch_norm(net, batches)
    with torch.no_grad():
        per_batch = [net[0](b).transpose(0, 1).reshape(4, -1) for b in batches]
    expected_mean = torch.stack([f.mean(1) for f in per_batch]).mean(0)
    expected_var = torch.stack([f.var(1) for f in per_batch]).mean(0)  # BN keeps the unbiased batch variance
    assert torch.allclose(net[1].running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(net[1].running_var, expected_var, rtol=1e-4)
    assert not net.training and net[1].momentum == 0.1


def test_keep_average_exports_the_mean_of_the_last_epochs(tmp_path, monkeypatch):
    files = write_faces(tmp_path / "faces", 3)
    teacher = tmp_path / "teacher"
    write_teacher_npz(str(teacher / "helen_test.npz"), str(tmp_path / "faces"), files,
                      np.zeros((3, 68, 2), np.float32), np.zeros((3, 3), np.float32), np.ones(3, bool))
    cfg = train_config_from_dict({
        "data": {"helen_train": str(tmp_path / "faces"), "helen_test": str(tmp_path / "faces"),
                 "teacher_dir": str(teacher), "samples_per_epoch": 4, "cache_helen": False},
        "optim": {"epochs": 3, "batch_size": 4, "workers": 0, "warmup_steps": 1, "lr": 0.01},
        "output": {"dir": str(tmp_path / "run"), "export": str(tmp_path / "avg.pt"), "keep": "average",
                   "average_epochs": 2},
    })
    import edge.train.train as train_module

    seen = []  # each epoch's weights, as the loop hands them to the checkpoint

    def spy(model):
        state = model_state(model)
        seen.append(state["landmark_out.weight"].clone())  # on the CPU the state shares the live tensors
        return state

    model_state = train_module.model_state
    monkeypatch.setattr(train_module, "model_state", spy)
    metrics = run(cfg)
    assert metrics["average_epochs"] == 2 and math.isfinite(metrics["average_nme"])
    exported = load_checkpoint(str(tmp_path / "avg.pt")).state_dict()["landmark_out.weight"]
    assert torch.allclose(exported, (seen[1] + seen[2]) / 2, atol=1e-7)
    assert not torch.allclose(exported, seen[2])
    with pytest.raises(ConfigError, match="output.keep"):
        train_config_from_dict({"output": {"keep": "mean"}})


def test_inner_face_weighs_nose_eyes_and_mouth_and_keeps_the_mean():
    import torch

    from edge.train.config import LossConfig

    weights = point_weights(68, 3.0)
    assert float(weights.mean()) == pytest.approx(1.0) and float(weights[30] / weights[5]) == pytest.approx(3.0)
    assert torch.equal(point_weights(98, 3.0), torch.ones(98))  # another layout: all points alike
    truth = torch.zeros(1, 68, 2)
    jaw_off, mouth_off = truth.clone(), truth.clone()
    jaw_off[0, 5], mouth_off[0, 60] = 0.05, 0.05  # one point 5 % of the crop off
    batch = {"landmarks": truth, "landmark_weight": torch.ones(1), "pose": torch.zeros(1, 3),
             "pose_mask": torch.zeros(1), "track": torch.ones(1)}
    out = {"pose": torch.zeros(1, 3), "track": torch.ones(1, 1)}
    cfg = LossConfig(inner_face=3.0)
    _, jaw = total_loss({**out, "landmarks": jaw_off}, batch, cfg)
    _, mouth = total_loss({**out, "landmarks": mouth_off}, batch, cfg)
    assert mouth["landmark"] == pytest.approx(3 * jaw["landmark"])
    _, plain = total_loss({**out, "landmarks": mouth_off}, batch, LossConfig())
    assert plain["landmark"] == pytest.approx(float(wing(torch.tensor(0.05), 0.09, 0.018)) / 68, rel=1e-5)  # x and y off

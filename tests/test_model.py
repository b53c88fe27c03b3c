"""ATPN network, ONNX export and the ONNX Runtime backend: the contract every other part relies on."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from edge.errors import ModelError
from edge.model.atpn import ATPN
from edge.model.export import OPSET, export_onnx
from edge.model.spec import INPUT_NAME, OUTPUT_NAMES, ModelSpec
from edge.model.stats import MAC_BUDGET, PARAM_BUDGET, count_macs, count_params
from edge.pipeline.aligner import Aligner
from edge.model.crop import CropBox
from edge.runtime import open_engine


def randomised(spec: ModelSpec, seed: int = 0) -> ATPN:
    """An ATPN whose every weight and BN statistic is random, so parity checks see real signal."""
    torch.manual_seed(seed)
    model = ATPN(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        if spec.landmark_head == "regression":  # (soft-argmax points are inside the crop by construction)
            model.landmark_out.bias.fill_(0.5)  # keep points inside the crop so the heatmap is not empty
    return model.eval()


@pytest.fixture(scope="module", params=[(68, "regression"), (98, "regression"), (68, "integral")])
def exported(request, tmp_path_factory):
    points, head = request.param
    spec = ModelSpec(num_landmarks=points, landmark_head=head)
    model = randomised(spec)
    path = str(tmp_path_factory.mktemp("onnx") / f"atpn{points}_{head}.onnx")
    export_onnx(model, path)
    return model, path


@pytest.mark.parametrize("landmarks", [68, 98])
def test_budget(landmarks):
    model = ATPN(ModelSpec(num_landmarks=landmarks))
    assert count_params(model) <= PARAM_BUDGET
    assert 5_000_000 < count_macs(model) <= MAC_BUDGET


def test_width_scales_every_layer_and_travels_with_the_checkpoint(tmp_path):
    from edge.model.atpn import channels, load_checkpoint
    from edge.train.checkpoint import export_model

    assert [channels(c, 1.0) for c in (16, 24, 96, 128)] == [16, 24, 96, 128]  # width 1 is the shipped ATPN
    assert [channels(c, 1.25) for c in (16, 24, 96, 128)] == [24, 32, 120, 160]
    wide = ATPN(ModelSpec(width=1.25))
    assert count_params(wide) > 1.4 * count_params(ATPN(ModelSpec()))
    assert wide(torch.zeros(2, 3, 112, 112))["landmarks"].shape == (2, 68, 2)
    export_model(wide, str(tmp_path / "wide.pt"))
    assert load_checkpoint(str(tmp_path / "wide.pt")).spec.width == 1.25  # rebuilt at its own width
    assert ModelSpec.from_json('{"input_size": 112}').width == 1.0  # checkpoints from before width existed


def test_export_is_valid_onnx_with_dynamic_batch_and_spec(exported):
    model, path = exported
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    batch_dims = [t.type.tensor_type.shape.dim[0] for t in list(proto.graph.input) + list(proto.graph.output)]
    assert all(d.dim_param and not d.dim_value for d in batch_dims)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelSpec.from_json(meta["atpn_spec"]) == model.spec


@pytest.mark.parametrize("batch", [1, 8])
def test_onnxruntime_matches_pytorch(exported, batch):
    model, path = exported
    spec = model.spec
    crops = np.random.default_rng(batch).normal(0, 1, spec.input_shape(batch)).astype(np.float32)
    with torch.no_grad():
        want = {k: v.numpy() for k, v in model(torch.from_numpy(crops)).items()}
    with open_engine(path) as engine:
        got = engine.infer({INPUT_NAME: crops})
    for name, shape in spec.output_shapes(batch).items():
        assert got[name].shape == shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=1e-4, err_msg=name)
    assert got["heatmap"].max() > 0.5  # the render is alive, not all zeros


def test_heatmap_peaks_on_the_landmarks():
    model = ATPN(ModelSpec())
    pts = torch.tensor([[[7.5, 21.5], [17.5, 8.5]]]) / 28  # cell centres
    heat = model.renderer(pts)[0, 0].numpy()
    size = heat.shape[0]
    for x, y in pts[0].numpy():
        assert heat[int(y * size), int(x * size)] > 0.9
    assert heat[0, size - 1] < 1e-3


def test_aligner_maps_landmarks_back_to_frame(exported):
    _, path = exported
    frame = np.zeros((240, 320, 3), np.uint8)
    boxes = [CropBox(100, 120, 80), CropBox(220, 100, 60, angle_deg=30)]
    with open_engine(path) as engine:
        result = Aligner(engine)(frame, boxes)
    assert result.landmarks_px.shape[:2] == (2, engine.outputs["landmarks"].shape[1])
    for box, pts in zip(boxes, result.landmarks_px):  # points near the crop centre land near the box centre
        assert np.all(np.abs(np.median(pts, axis=0) - (box.cx, box.cy)) < box.size / 2)
    assert result.track.shape == (2,) and np.all((result.track >= 0) & (result.track <= 1))


def _non_atpn_onnx(path: str) -> str:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("make_file, problem", [
    (lambda p, good: p, "not found"),
    (lambda p, good: (open(p, "wb").close(), p)[1], "empty"),
    (lambda p, good: (open(p, "w").write("hello, not a model\n"), p)[1], "cannot load"),
    (lambda p, good: (open(p, "wb").write(open(good, "rb").read()[:5000]), p)[1], "cannot load"),
    (lambda p, good: _non_atpn_onnx(p), "not an ATPN export"),
])
def test_bad_model_files_fail_with_one_line_naming_the_file(tmp_path, exported, make_file, problem):
    path = make_file(str(tmp_path / "model.onnx"), exported[1])
    with pytest.raises(ModelError) as err:
        Aligner(open_engine(path))
    message = str(err.value)
    assert path in message and problem in message and "\n" not in message


def test_atpn_with_wrong_output_shape_is_refused(tmp_path, exported):
    model, path = exported
    proto = onnx.load(path)
    meta = next(p for p in proto.metadata_props if p.key == "atpn_spec")
    other = 98 if model.spec.num_landmarks == 68 else 68
    meta.value = ModelSpec(num_landmarks=other).to_json()  # metadata now disagrees with the graph
    bad = str(tmp_path / "lying.onnx")
    onnx.save(proto, bad)
    with pytest.raises(ModelError, match="'landmarks' has shape"):
        Aligner(open_engine(bad))


def test_export_cli_reports_a_missing_checkpoint_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge.model.export", "--weights", str(tmp_path / "none.pt"),
                          "--out", str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "none.pt" in out.stderr and "not found" in out.stderr


@pytest.mark.parametrize("name, config_key, width, size", [("atpn68_integral", "atpn", 1.0, 112),
                                                            ("atpn68_stills", "atpn_stills", 1.5, 128)])
def test_make_models_exports_the_shipped_integral_models_and_they_align_a_face(astronaut_bgr, name, config_key, width,
                                                                               size):
    """models/NAME.onnx (from weights/NAME.pt) is what the default config's `models.KEY` selects: the video
    model, and for photos a wider one on larger crops."""
    from conftest import model_path
    from edge.config import load_config
    from edge.pipeline.aligner import spec_of
    from edge.model.crop import crop_from_landmarks

    assert load_config(None).models.path(config_key) == str(model_path(f"{name}.onnx"))
    with open_engine(str(model_path(f"{name}.onnx"))) as engine:
        spec = spec_of(engine)
        assert spec.landmark_head == "integral" and engine.metadata.get("atpn_weights") == f"{name}.pt"
        assert (spec.width, spec.input_size) == (width, size)
        aligner, box = Aligner(engine), CropBox(256, 180, 230)  # roughly the face; the tracker's re-crops do the rest
        for _ in range(3):
            aligned = aligner(astronaut_bgr, [box])
            box = crop_from_landmarks(aligned.landmarks_px[0], spec.crop_scale)
    pts = aligned.landmarks_px[0]
    right_eye, left_eye, nose, chin = pts[36], pts[45], pts[30], pts[8]
    assert aligned.track[0] > 0.9  # it knows it is looking at a face
    assert right_eye[0] < nose[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < chin[1]


def test_mirror_average_is_the_mean_of_the_face_and_its_mirror_image(astronaut_bgr):
    """Averaging inside one frame equals running the shipped model on the mirrored frame by hand:
    the mirrored crop's points come back re-indexed and in place, its yaw and roll change sign."""
    from conftest import model_path
    from edge.model.crop import mirror_permutation

    width, size = astronaut_bgr.shape[1], ModelSpec().input_size
    box = CropBox(256, 185, 215, angle_deg=8.0)
    # The same window in the mirrored frame, nudged so its crop is the pixel-exact mirror of box's crop
    # (crop_matrix centres the window at S/2; a pixel grid flips about (S-1)/2).
    a, px = np.radians(box.angle_deg), box.size / size
    mirror_box = CropBox(width - 1 - box.cx + px * np.cos(a), box.cy - px * np.sin(a), box.size, -box.angle_deg)
    with open_engine(str(model_path("atpn68.onnx"))) as engine:
        plain = Aligner(engine)(astronaut_bgr, [box])
        by_hand = Aligner(engine)(np.ascontiguousarray(astronaut_bgr[:, ::-1]), [mirror_box])
        averaged = Aligner(engine, mirror_average=True)(astronaut_bgr, [box])
    mirrored_pts = by_hand.landmarks_px[0][mirror_permutation(68)] * (-1, 1) + (width - 1, 0)
    np.testing.assert_allclose(averaged.landmarks_px[0], (plain.landmarks_px[0] + mirrored_pts) / 2, atol=0.05)
    mirrored_pose = by_hand.pose_deg[0] * (-1, 1, -1)
    np.testing.assert_allclose(averaged.pose_deg[0], (plain.pose_deg[0] + mirrored_pose) / 2, atol=0.05)
    np.testing.assert_allclose(averaged.track, (plain.track + by_hand.track) / 2, atol=1e-3)
    assert 0.1 < np.abs(plain.landmarks_px - averaged.landmarks_px).mean() < 0.03 * box.size  # small but real

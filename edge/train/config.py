"""Training settings: configs/train_*.yaml -> frozen dataclasses, every key checked like edge.config.

Sections: model (ATPN width and landmark head), data (where faces come from and how they mix), augment (crop jitter and photometric
noise), loss (head weights), optim (schedule and CPU use), output (run folder and shipped weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from edge.config import read_yaml, require, sections_from_dict
from edge.model.spec import LANDMARK_HEADS, WIDTH_RANGE


@dataclass(frozen=True)
class DataConfig:
    helen_train: str = "../shared/data/helen/train"  # image + .pts folder: human landmarks
    helen_test: str = "../shared/data/helen/test"  # validation (human landmarks, teacher pose), unless holdout
    holdout: int = 0  # > 0: validate on this many HELEN-train faces (seeded, never trained on) instead of
    # HELEN test, so the epoch kept is not picked on the faces its figures are then reported on
    utkface: str = "../shared/data/utkface"  # images the teacher labelled
    teacher_dir: str = "cache/teacher"  # {helen_train,helen_test,utkface}.npz; missing files are skipped
    helen_share: float = 0.6  # fraction of samples drawn from HELEN train when UTKFace labels exist
    teacher_landmark_weight: float = 0.5  # teacher landmarks are noisier than human ones
    samples_per_epoch: int = 4800
    negative_fraction: float = 0.25  # crops the track head must reject
    cache_helen: bool = True  # keep decoded HELEN images in memory (about 300 MB)

    def __post_init__(self) -> None:
        require(0.0 < self.helen_share <= 1.0, "data.helen_share", "in (0, 1]", self.helen_share)
        require(self.teacher_landmark_weight >= 0.0, "data.teacher_landmark_weight", ">= 0", self.teacher_landmark_weight)
        require(self.samples_per_epoch >= 1, "data.samples_per_epoch", ">= 1", self.samples_per_epoch)
        require(self.holdout >= 0, "data.holdout", ">= 0 (0 = validate on helen_test)", self.holdout)
        require(0.0 <= self.negative_fraction < 1.0, "data.negative_fraction", "in [0, 1)", self.negative_fraction)


@dataclass(frozen=True)
class AugmentConfig:
    shift: float = 0.08  # crop centre jitter, fraction of the crop side (uniform, per axis)
    scale_min: float = 0.85
    scale_max: float = 1.15
    rotate_deg: float = 15.0  # on top of the eye-line angle
    no_rotation_prob: float = 0.2  # axis-aligned crop, as a detector box gives
    flip_prob: float = 0.5
    colour_prob: float = 0.8
    gray_prob: float = 0.1
    blur_prob: float = 0.2
    occlusion_prob: float = 0.3
    jpeg_prob: float = 0.2
    noise_prob: float = 0.2

    def __post_init__(self) -> None:
        require(0.0 < self.scale_min <= self.scale_max, "augment.scale_min/scale_max", "0 < min <= max",
                 (self.scale_min, self.scale_max))
        for f in fields(self):
            if f.name.endswith("_prob"):
                value = getattr(self, f.name)
                require(0.0 <= value <= 1.0, f"augment.{f.name}", "in [0, 1]", value)


@dataclass(frozen=True)
class LossConfig:
    landmark: float = 1.0
    pose: float = 0.5
    track: float = 0.1
    wing_w: float = 0.09  # Wing loss in crop units ([0,1]): 10 px of a 112 px crop
    wing_eps: float = 0.018  # 2 px of a 112 px crop
    inner_face: float = 1.0  # 68 points: weight of nose, eyes and mouth (27-67) against jaw and brows, mean kept at 1

    def __post_init__(self) -> None:
        require(self.wing_w > 0 and self.wing_eps > 0, "loss.wing_w/wing_eps", "> 0", (self.wing_w, self.wing_eps))
        require(self.inner_face > 0, "loss.inner_face", "> 0 (1 = all points alike)", self.inner_face)


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 92
    batch_size: int = 32
    lr: float = 0.002
    weight_decay: float = 0.0001
    warmup_steps: int = 300
    min_lr_ratio: float = 0.01  # cosine ends at lr * this
    threads: int = 1  # torch intra-op threads (1 beats 2 on a shared 2-core CPU)
    workers: int = 1  # DataLoader processes (0 = in the training process)
    device: str = "auto"  # "cuda" where a CUDA GPU is visible to torch, else "cpu"; or name one
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "optim.epochs", ">= 1", self.epochs)
        require(self.batch_size >= 2, "optim.batch_size", ">= 2 (batch norm)", self.batch_size)
        require(self.lr > 0, "optim.lr", "> 0", self.lr)
        require(self.threads >= 1 and self.workers >= 0, "optim.threads/workers", ">= 1 / >= 0",
                 (self.threads, self.workers))
        require(self.device in ("auto", "cpu", "cuda"), "optim.device", "auto, cpu or cuda", self.device)


KEEP_MODES = ("best", "last", "average")


@dataclass(frozen=True)
class TrainOutputConfig:
    dir: str = "cache/train"  # last.pt, best.pt, metrics.jsonl
    export: Optional[str] = "weights/atpn68.pt"  # spec + weights only; none to skip
    keep: str = "best"  # what `export` holds: the "best" epoch by validation NME, the "last" epoch, or the
    # "average" of the weights of the last `average_epochs` epochs (edge.train.averaging; validation only reported)
    average_epochs: int = 10

    def __post_init__(self) -> None:
        require(self.keep in KEEP_MODES, "output.keep", ", ".join(KEEP_MODES), self.keep)
        require(self.average_epochs >= 1, "output.average_epochs", ">= 1", self.average_epochs)


@dataclass(frozen=True)
class ModelConfig:
    width: float = 1.0  # ATPN's channel multiplier (ModelSpec.width): more accuracy for more time per crop
    landmark_head: str = "regression"  # or "integral": more accurate, ~30 % more time per crop on a CPU
    crop_scale: float = 1.6  # crop side / landmark-box side (ModelSpec.crop_scale): tighter = more pixels per face
    input_size: int = 112  # crop pixels (ModelSpec.input_size, a multiple of 16): more pixels per face, ~(n/112)^2 time

    def __post_init__(self) -> None:
        require(WIDTH_RANGE[0] <= self.width <= WIDTH_RANGE[1], "model.width", f"in {list(WIDTH_RANGE)}", self.width)
        require(self.landmark_head in LANDMARK_HEADS, "model.landmark_head", " or ".join(LANDMARK_HEADS),
                 self.landmark_head)
        require(1.0 < self.crop_scale <= 3.0, "model.crop_scale", "in (1, 3]", self.crop_scale)
        require(64 <= self.input_size <= 256 and self.input_size % 16 == 0, "model.input_size",
                "a multiple of 16 in [64, 256]", self.input_size)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)


def train_config_from_dict(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """Check every section, key and value, as edge.config does; the first problem is a one-line ConfigError."""
    return sections_from_dict(TrainConfig, data, where)


def load_train_config(path: str) -> TrainConfig:
    """Read a training YAML; an empty file means all defaults."""
    return train_config_from_dict(read_yaml(Path(path)) or {}, where=path)

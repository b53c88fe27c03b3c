"""ATPN in PyTorch: one light CNN for landmarks, head pose and a tracking score.

The paper's ideas, our layers:
- backbone: a strided stem straight to 28x28, then MobileNetV2-style inverted residuals down to 7x7;
- shortcut: the shallow 28x28 features (they follow facial boundaries) are pooled to 7x7 and
  concatenated with the deep features before the landmark head;
- landmark head: global depthwise 7x7 conv + linear -> N points in [0,1] crop coordinates;
- cheap heatmap: Gaussians rendered on a 28x28 grid from the predicted points, separable so the
  sum over points is one small MatMul (plain ops: Sub/Mul/Exp/MatMul/Clip; ONNX and TensorRT run
  them natively);
- fusion: the shallow features gated by the heatmap (x * (1 + H)) plus H itself go through two
  strided convs; pose (yaw, pitch, roll in degrees) and track (probability the crop still holds a
  well-framed face) read these fused features together with the deep ones.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from edge.model.spec import ModelSpec

POSE_SCALE_DEG = 90.0  # the pose layer works in units of 90 degrees
# Channels at width 1.0 (the shipped ATPN-68); ModelSpec.width scales them all.
BASE_CHANNELS = {"stem": 16, "shallow": 24, "mid": 48, "deep1": 64, "deep": 96, "shortcut": 32, "head": 128,
                 "fusion1": 32, "fusion": 48, "trunk": 96, "lateral": 32}


def channels(base: int, width: float) -> int:
    """`base` scaled by the width multiplier, to a multiple of 8 (what SIMD kernels like); 1.0 keeps it."""
    return max(8, int(base * width + 4) // 8 * 8)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True,
            same: bool = True) -> nn.Sequential:
    """Conv + BN (+ ReLU6); `same=False` drops the padding (a global k x k conv)."""
    pad = k // 2 if same else 0
    layers: List[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1, depthwise 3x3, project 1x1, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            conv_bn(cin, mid, 1),
            conv_bn(mid, mid, 3, stride, groups=mid),
            conv_bn(mid, cout, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def stage(cin: int, cout: int, n: int, stride: int, expand: int) -> nn.Sequential:
    blocks = [InvertedResidual(cin, cout, stride, expand)]
    blocks += [InvertedResidual(cout, cout, 1, expand) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class HeatmapRenderer(nn.Module):
    """Sum of separable Gaussians on an h x w grid, clipped to 1: [B,N,2] in [0,1] -> [B,1,h,w].

    exp(-(dx^2+dy^2)/2s^2) = exp(-dx^2/2s^2) * exp(-dy^2/2s^2), so the sum over points is one
    [h,N] x [N,w] matrix product: N*(h+w) exponentials instead of N*h*w, and a MatMul every
    backend runs fast.
    """

    def __init__(self, size: int, sigma_cells: float) -> None:
        super().__init__()
        coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        self.register_buffer("grid", coords.reshape(1, 1, -1), persistent=False)
        self.inv_two_sigma2 = float(size * size / (2.0 * sigma_cells * sigma_cells))
        self.size = size

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        dx = landmarks[:, :, 0:1] - self.grid  # [B,N,w]
        dy = landmarks[:, :, 1:2] - self.grid  # [B,N,h]
        gx = torch.exp(-(dx * dx) * self.inv_two_sigma2)
        gy = torch.exp(-(dy * dy) * self.inv_two_sigma2)
        heat = torch.matmul(gy.transpose(1, 2), gx)  # [B,h,w]
        return torch.clamp(heat, max=1.0).unsqueeze(1)


class IntegralHead(nn.Module):
    """Landmarks by soft-argmax: one heatmap per point on the S/4 grid, from the shallow features plus
    the mid and deep ones upsampled (an FPN-style sum), then the expected position under its softmax.
    Inner points (eyes, nose, mouth) need the finer grid: a 7x7 regression places them coarsely."""

    def __init__(self, c_shallow: int, c_mid: int, c_deep: int, hidden: int, points: int, size: int) -> None:
        super().__init__()
        self.lateral_s = conv_bn(c_shallow, hidden, 1, act=False)
        self.lateral_m = conv_bn(c_mid, hidden, 1, act=False)
        self.lateral_d = conv_bn(c_deep, hidden, 1, act=False)
        self.refine = nn.Sequential(nn.ReLU6(), conv_bn(hidden, hidden, 3, groups=hidden), conv_bn(hidden, hidden, 1))
        self.logits = nn.Conv2d(hidden, points, 1)
        self.points = points
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("cells", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)  # [S*S,2]

    def forward(self, s: torch.Tensor, m: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate
        x = self.lateral_s(s) + up(self.lateral_m(m), scale_factor=2.0, mode="bilinear", align_corners=False)
        x = x + up(self.lateral_d(d), scale_factor=4.0, mode="bilinear", align_corners=False)
        logits = self.logits(self.refine(x))  # [B,N,S,S]
        prob = torch.softmax(logits.reshape(-1, self.points, self.cells.shape[0]), dim=-1)  # [B,N,S*S]
        return torch.matmul(prob, self.cells)  # expected (x, y) of each point: one MatMul, [B,N,2]


def dw_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1: a strided step that costs little."""
    return nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout, 1))


class ATPN(nn.Module):
    """Input: [B,3,S,S] normalised RGB crops (see ModelSpec). Output: dict of the four named tensors."""

    def __init__(self, spec: ModelSpec = ModelSpec()) -> None:
        super().__init__()
        if spec.input_size // 4 != spec.heatmap_size:
            raise ValueError(f"heatmap_size must be input_size/4 (the shallow feature size), got {spec.heatmap_size}")
        self.spec = spec
        n = spec.num_landmarks
        c = {k: channels(v, spec.width) for k, v in BASE_CHANNELS.items()}
        # S/2 -> S/4 quickly: full-resolution layers are what a CPU pays most for.
        self.stem = nn.Sequential(conv_bn(3, c["stem"], 3, 2), dw_separable(c["stem"], c["shallow"], 2))
        self.shallow = stage(c["shallow"], c["shallow"], 1, 1, 3)  # S/4: boundary-like features
        self.mid = stage(c["shallow"], c["mid"], 2, 2, 3)  # S/8
        self.deep = nn.Sequential(stage(c["mid"], c["deep1"], 2, 2, 3), stage(c["deep1"], c["deep"], 2, 1, 3))  # S/16
        if spec.landmark_head == "integral":  # the shortcut: shallow features read at S/4 by the head
            self.landmark_head = IntegralHead(c["shallow"], c["mid"], c["deep"], c["lateral"], n, spec.heatmap_size)
        else:  # the shortcut: shallow features pooled to the deep resolution
            self.shortcut = nn.Sequential(nn.AvgPool2d(4), conv_bn(c["shallow"], c["shortcut"], 1))
            self.landmark_head = nn.Sequential(
                conv_bn(c["deep"] + c["shortcut"], c["head"], 1),
                conv_bn(c["head"], c["head"], spec.input_size // 16, groups=c["head"], act=False, same=False),  # 7x7 -> 1
            )
            self.landmark_out = nn.Linear(c["head"], 2 * n)
        self.renderer = HeatmapRenderer(spec.heatmap_size, spec.heatmap_sigma)
        self.fusion = nn.Sequential(dw_separable(c["shallow"] + 1, c["fusion1"], 2),
                                    dw_separable(c["fusion1"], c["fusion"], 2))  # S/4 -> S/16
        self.task_trunk = nn.Sequential(nn.Linear(c["deep"] + c["fusion"], c["trunk"]), nn.ReLU6(inplace=True))
        self.pose_out = nn.Linear(c["trunk"], 3)
        self.track_out = nn.Linear(c["trunk"], 1)

    def forward(self, crop: torch.Tensor) -> Dict[str, torch.Tensor]:
        s = self.shallow(self.stem(crop))
        m = self.mid(s)
        d = self.deep(m)
        if self.spec.landmark_head == "integral":
            landmarks = self.landmark_head(s, m, d)
        else:
            f = self.landmark_head(torch.cat([d, self.shortcut(s)], dim=1)).flatten(1)
            landmarks = self.landmark_out(f).reshape(-1, self.spec.num_landmarks, 2)
        heatmap = self.renderer(landmarks)
        fused = self.fusion(torch.cat([s * (1.0 + heatmap), heatmap], dim=1))
        g = torch.cat([fused.mean(dim=(2, 3)), d.mean(dim=(2, 3))], dim=1)
        t = self.task_trunk(g)
        return {
            "landmarks": landmarks,
            "pose": self.pose_out(t) * POSE_SCALE_DEG,
            "track": torch.sigmoid(self.track_out(t)),
            "heatmap": heatmap,
        }


def build_atpn(spec: ModelSpec = ModelSpec()) -> ATPN:
    """A fresh ATPN with the landmark layer starting at the crop centre."""
    model = ATPN(spec)
    if spec.landmark_head == "integral":  # flat heatmaps: every point at the centre
        nn.init.zeros_(model.landmark_head.logits.weight)
        nn.init.zeros_(model.landmark_head.logits.bias)
    else:
        nn.init.zeros_(model.landmark_out.weight)
        nn.init.constant_(model.landmark_out.bias, 0.5)
    return model


def load_checkpoint(path: str) -> ATPN:
    """An ATPN from a checkpoint written by edge.train (spec + state_dict)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ATPN(ModelSpec.from_json(ckpt["spec"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()

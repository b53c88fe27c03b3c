"""`python -m edge.model.stats`: parameters and multiply-accumulates per crop, measured on the model."""
from __future__ import annotations

import argparse
from typing import List

import torch
from torch import nn

from edge.model.atpn import ATPN, build_atpn
from edge.model.spec import LANDMARK_HEADS, ModelSpec

PARAM_BUDGET = 1_500_000
MAC_BUDGET = 150_000_000


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: ATPN) -> int:
    """MACs of one crop: every Conv2d and Linear (hooked on a real forward pass) plus the heatmap render."""
    total: List[int] = []

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total.append(out[0].numel() * k)

    def linear_hook(m: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        total.append(m.in_features * m.out_features)

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    spec = model.spec
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, spec.input_size, spec.input_size))
    for h in hooks:
        h.remove()
    render = spec.num_landmarks * spec.heatmap_size ** 2  # the [h,N] x [N,w] product
    return sum(total) + render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--landmarks", type=int, default=68, choices=(68, 98))
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier (default: %(default)s)")
    ap.add_argument("--head", default="regression", choices=LANDMARK_HEADS, help="landmark head")
    ap.add_argument("--size", type=int, default=ModelSpec.input_size, help="crop pixels (default: %(default)s)")
    args = ap.parse_args()
    try:
        spec = ModelSpec(num_landmarks=args.landmarks, width=args.width, landmark_head=args.head).sized(args.size)
    except ValueError as exc:
        ap.error(str(exc))
    model = build_atpn(spec)
    params, macs = count_params(model), count_macs(model)
    print(f"ATPN-{args.landmarks} x{args.width:g} {args.head} @ {model.spec.input_size}px: {params:,} parameters "
          f"({100 * params / PARAM_BUDGET:.0f} % of budget {PARAM_BUDGET:,}), "
          f"{macs / 1e6:.1f} M MACs per crop ({100 * macs / MAC_BUDGET:.0f} % of budget {MAC_BUDGET / 1e6:.0f} M)")


if __name__ == "__main__":
    main()

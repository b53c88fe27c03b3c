"""`python -m edge.train --config configs/train_atpn68.yaml [--resume ckpt | --init weights] [--epochs N] [--out DIR]`."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import List, Optional

from edge.errors import EdgeError


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.train", description="Train ATPN (landmarks, pose, track).")
    ap.add_argument("--config", default="configs/train_atpn68.yaml", help="training YAML (default: %(default)s)")
    ap.add_argument("--resume", default=None, help="a last.pt to continue (epoch count, optimizer, best NME)")
    ap.add_argument("--init", default=None,
                    help="start from these weights (e.g. weights/atpn68.pt) with a fresh optimizer and schedule: fine-tuning")
    ap.add_argument("--epochs", type=int, default=None, help="total epochs (overrides optim.epochs)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (overrides optim.lr; fine-tuning wants less)")
    ap.add_argument("--out", default=None, help="run folder for checkpoints and metrics (overrides output.dir)")
    args = ap.parse_args(argv)
    if args.resume and args.init:
        ap.error("--resume continues a run, --init starts a new one from weights: give one of them")
    try:
        from edge.train.config import load_train_config, train_config_from_dict
        from edge.train.train import run

        cfg = load_train_config(args.config)
        data = dataclasses.asdict(cfg)
        if args.epochs is not None:
            data["optim"]["epochs"] = args.epochs
        if args.lr is not None:
            data["optim"]["lr"] = args.lr
        if args.out is not None:
            data["output"]["dir"] = args.out
        run(train_config_from_dict(data, where=args.config), resume=args.resume, init=args.init)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume <out>/last.pt", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

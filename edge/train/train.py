"""The training loop: AdamW with warm-up + cosine LR, a validation pass and a checkpoint every epoch.

Built for a small CPU: channels-last tensors (several times faster for depthwise convs on CPU),
a fixed number of intra-op threads, one loader process. Where torch sees a CUDA GPU
(optim.device auto) the network runs there and the loader processes do the augmentation. The
best model by validation NME (or the last, or the average of the last epochs: `output.keep`) is exported
as spec + weights (the file the repository ships).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Dict, Optional, Tuple

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from edge.errors import ModelError
from edge.model.atpn import ATPN, build_atpn
from edge.model.spec import ModelSpec
from edge.train.averaging import WeightAverage, remeasure_batch_norm
from edge.train.checkpoint import export_model, load_training_state, load_weights, model_state, save_atomic
from edge.train.config import OptimConfig, TrainConfig
from edge.train.data import CropDataset, seed_worker
from edge.train.losses import total_loss
from edge.train.face_sets import training_sources, validation_records
from edge.train.validate import ValidationSet, validate, validation_set


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Linear warm-up, then cosine down to lr * min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


def training_device(cfg: OptimConfig) -> torch.device:
    """optim.device: "auto" is the GPU where torch sees one; "cuda" without one is a one-line error."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ModelError("optim.device is cuda but torch sees no CUDA GPU; set optim.device: auto or cpu")
    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed crop size: pick the fastest kernels once
    return device


def make_loader(cfg: TrainConfig, spec: ModelSpec, epoch: int, device: torch.device) -> DataLoader:
    dataset = CropDataset(training_sources(cfg.data), spec, cfg.augment, cfg.data.negative_fraction, cfg.optim.seed)
    sampler = WeightedRandomSampler(dataset.sample_weights(), cfg.data.samples_per_epoch, replacement=True,
                                    generator=torch.Generator().manual_seed(cfg.optim.seed + epoch))
    workers = cfg.optim.workers
    gpu = device.type == "cuda"
    # Loader processes are spawned, not forked, beside a CUDA context: a fork copies the parent's
    # CUDA state, which is undefined behaviour and can stall every worker.
    return DataLoader(dataset, batch_size=cfg.optim.batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0, worker_init_fn=seed_worker if workers else None,
                      drop_last=True, pin_memory=gpu, multiprocessing_context="spawn" if gpu and workers else None)


def train_epoch(model: ATPN, loader: DataLoader, opt: torch.optim.Optimizer, cfg: TrainConfig,
                step: int, total_steps: int, desc: str, device: torch.device) -> Dict[str, float]:
    """One pass over the loader; returns mean losses, samples/s and the new step count."""
    model.train()
    sums: Dict[str, float] = {}
    t0, n = time.time(), 0
    bar = tqdm(loader, desc=desc, mininterval=0.5 if sys.stderr.isatty() else 30.0, file=sys.stderr)
    for batch in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, cfg.optim)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        crops = batch.pop("crop").contiguous(memory_format=torch.channels_last)
        loss, parts = total_loss(model(crops), batch, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        n += 1
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{parts['loss']:.4f}", refresh=False)
    out = {f"train_{k}": v / max(n, 1) for k, v in sums.items()}
    out.update(samples_per_s=n * cfg.optim.batch_size / (time.time() - t0), step=step)
    return out


def run(cfg: TrainConfig, resume: Optional[str] = None, init: Optional[str] = None) -> Dict[str, float]:
    """Train to cfg.optim.epochs, continuing a run (`resume`: a last.pt) or starting from weights
    (`init`: an export or checkpoint; fresh optimizer and schedule); returns the last epoch's metrics."""
    torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.optim.seed)
    spec = ModelSpec(width=cfg.model.width, landmark_head=cfg.model.landmark_head,
                     crop_scale=cfg.model.crop_scale).sized(cfg.model.input_size)
    device = training_device(cfg.optim)
    model = build_atpn(spec).to(device=device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    epoch, step, best = 0, 0, math.inf
    average = WeightAverage()
    if init:
        missing = model.load_state_dict(load_weights(init, model), strict=False).missing_keys
        print(f"[train] starting from the weights of {init}" + (f"; new: {len(missing)} tensors of "
              f"{sorted({k.split('.')[0] for k in missing})}" if missing else ""), flush=True)
    if resume:
        ckpt = load_training_state(resume)
        if ModelSpec.from_json(ckpt["spec"]) != spec:
            raise ModelError(f"{resume}: trained for a different ModelSpec ({ckpt['spec']}); start a new run")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        epoch, step, best = int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt.get("best_nme", math.inf))
        average = WeightAverage.from_checkpoint(ckpt.get("average"))
        print(f"[train] resumed {resume}: {epoch} epochs done, best NME {best:.4f}", flush=True)
    print(f"[train] on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                    f", {cfg.optim.threads} thread(s)") + f", {cfg.optim.workers} loader process(es)",
          flush=True)
    loader = make_loader(cfg, spec, epoch, device)
    val: ValidationSet = validation_set(validation_records(cfg.data), spec)
    if init:  # the export is replaced only by a model better than the one fine-tuning started from
        best = validate(model, val)["nme"]
        print(f"[train] {init}: validation NME {best:.4f} to beat", flush=True)
    total_steps = cfg.optim.epochs * len(loader)
    os.makedirs(cfg.output.dir, exist_ok=True)
    metrics: Dict[str, float] = {}
    while epoch < cfg.optim.epochs:
        t0 = time.time()
        metrics = train_epoch(model, loader, opt, cfg, step, total_steps, f"epoch {epoch + 1}/{cfg.optim.epochs}",
                              device)
        step = int(metrics.pop("step"))
        metrics.update(validate(model, val))
        epoch += 1
        improved = metrics["nme"] < best
        best = min(best, metrics["nme"])
        metrics.update(epoch=epoch, lr=lr_at(step, total_steps, cfg.optim), seconds=time.time() - t0, best_nme=best)
        weights = model_state(model)
        if cfg.output.keep == "average" and epoch > cfg.optim.epochs - cfg.output.average_epochs:
            average.add(weights)
        state = {"spec": spec.to_json(), "model": weights, "optimizer": opt.state_dict(),
                 "epoch": epoch, "step": step, "best_nme": best, "metrics": metrics,
                 "average": average.to_checkpoint()}
        save_atomic(state, os.path.join(cfg.output.dir, "last.pt"))
        if improved:
            save_atomic(state, os.path.join(cfg.output.dir, "best.pt"))
        final = epoch == cfg.optim.epochs
        kept: Optional[ATPN] = None  # the model `output.keep` picks this epoch, if any
        if cfg.output.keep == "average":
            if final:
                kept, averaged = averaged_model(spec, average, loader, val, device)
                metrics.update(averaged)
                export_model(kept, os.path.join(cfg.output.dir, "average.pt"))
        elif improved if cfg.output.keep == "best" else final:
            kept = model
        if kept is not None and cfg.output.export:
            export_model(kept, cfg.output.export)
        with open(os.path.join(cfg.output.dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(metrics) + "\n")
        print("[train] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
              + (" *best*" if improved else ""), flush=True)
    return metrics


def averaged_model(spec: ModelSpec, average: WeightAverage, loader: DataLoader, val: ValidationSet,
                   device: torch.device) -> Tuple[ATPN, Dict[str, float]]:
    """The mean of the last epochs' weights, its batch-norm statistics measured on one epoch of training
    crops, and its validation metrics (prefixed average_)."""
    model = build_atpn(spec).to(device=device, memory_format=torch.channels_last)
    model.load_state_dict(average.mean)
    remeasure_batch_norm(model, (b["crop"].to(device).contiguous(memory_format=torch.channels_last)
                                 for b in tqdm(loader, desc="batch-norm statistics", file=sys.stderr,
                                               mininterval=0.5 if sys.stderr.isatty() else 30.0)))
    metrics: Dict[str, float] = {f"average_{k}": v for k, v in validate(model, val).items()}
    metrics["average_epochs"] = average.count
    return model, metrics

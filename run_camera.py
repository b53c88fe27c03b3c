#!/usr/bin/env python3
"""Run the ATPN camera loop: faces, 68 landmarks, head pose and tracking on any frame source.

`python run_camera.py` alone reads camera 0 if one opens, else the built-in demo sequence.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edge.errors import ConfigError, EdgeError

if TYPE_CHECKING:
    from edge.config import Config

# flag -> the config key it overrides
OVERRIDES = {"input": "source.input", "max_frames": "source.max_frames", "backend": "runtime.backend",
             "threads": "runtime.threads", "detect_every": "tracker.detect_every",
             "track_threshold": "tracker.track_threshold", "display": "output.display", "save": "output.save",
             "json": "output.json", "output": "output.targets", "quiet": "output.quiet", "stills": "stills.mode",
             "precision": "runtime.precision", "mirror_average": "runtime.mirror_average"}
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, systemd / docker stop, a closed terminal


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all stop the loop as Ctrl-C does: the first one raises KeyboardInterrupt
    in the main thread, the outputs close, the summary prints, and the exit code is 128 + its number.

    A signal ignored when we start (`nohup`, a background shell's SIGINT) stays ignored. After the first
    signal, and once the loop has ended (`hold`), signals are only noted, so closing the video finishes."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._raising = True
        self._previous: Dict[int, Any] = {}
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)  # Windows has no SIGHUP
            if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
                self._previous[number] = signal.signal(number, self._stop)

    def _stop(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self._raising:
                raise KeyboardInterrupt(signal.Signals(signum).name)

    def hold(self) -> None:
        """From now on a signal is only noted: what runs next (closing the outputs) must finish."""
        self._raising = False

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    from edge.config import DISPLAY_MODES, PRECISIONS, STILLS_MODES
    from edge.io.uri import USAGE
    from edge.runtime import BACKENDS

    ap = argparse.ArgumentParser(description=__doc__, epilog=USAGE, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--input", "-i", help="frame source URI (default from the config: auto)")
    ap.add_argument("--config", "-c", help="YAML config (default configs/cpu.yaml); flags override it")
    ap.add_argument("--backend", choices=BACKENDS, help="runtime for both models")
    ap.add_argument("--display", choices=DISPLAY_MODES, help="live window (auto: only where a display exists)")
    ap.add_argument("--save", metavar="OUT.mp4", help="write the annotated video")
    ap.add_argument("--json", metavar="OUT.jsonl", help="write one JSON line per frame")
    ap.add_argument("--output", "-o", action="append", metavar="URI",
                    help="a sink by URI, repeatable: out.mp4, out.jsonl, display://0, mqtt://host[:port]/topic "
                         "(--save and --json are aliases)")
    ap.add_argument("--max-frames", type=int, help="stop after N frames (0 = until the source ends)")
    ap.add_argument("--stills", choices=STILLS_MODES,
                    help="each picture on its own, detected and refined, never tracked from the one before "
                         "(auto: for an image or a folder of images; off: a folder of video frames)")
    ap.add_argument("--detect-every", type=int, help="re-detect every K frames for new faces (0 = only on loss)")
    ap.add_argument("--track-threshold", type=float, help="ATPN track score below which a track ends")
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads for ATPN, up to the cores (0 = all; "
                    "the detector: runtime.detector_threads)")
    ap.add_argument("--precision", choices=PRECISIONS, help="TensorRT engine precision when built from ONNX")
    ap.add_argument("--mirror-average", action="store_true", default=None,
                    help="ATPN also sees each face mirrored and averages: ~3 %% lower landmark error, 2x ATPN work")
    ap.add_argument("--quiet", "-q", action="store_true", default=None, help="no progress line, no summary")
    ap.add_argument("--benchmark", type=int, nargs="?", const=5, metavar="RUNS",
                    help="decode the input first, then time RUNS passes (default 5): FPS, per-stage and GPU "
                         "p50/p90/p99; report to stdout and --json (default out/benchmark.json)")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Exit codes: 0 done, 2 a user-fixable error (one line), 128 + N after signal N (130 for Ctrl-C).

    The signal handlers go in before the heavy imports, so a stop during start-up is a clean stop too."""
    stops = StopSignals()
    try:
        return run_until_done_or_stopped(argv, stops)
    finally:
        stops.restore()


def run_until_done_or_stopped(argv: Optional[List[str]], stops: StopSignals) -> int:
    """The run, its summary and its exit code. Whatever a stop makes the interrupted code raise (pybind11
    and numpy's C code turn KeyboardInterrupt into ImportError) counts as that stop."""
    say: Callable[[str], None] = lambda line: None
    stats = None  # a RunStats once the imports are done
    try:
        args = parse_args(argv)
        if not args.quiet:
            say = partial(print, file=sys.stderr)
        from edge.config import load_config
        from edge.app import run as app
        from edge.pipeline.stats import RunStats

        stats = RunStats()
        config = load_config(args.config).with_overrides({key: getattr(args, flag) for flag, key in OVERRIDES.items()})
        if args.benchmark is not None:
            return run_benchmark(config, args.benchmark, args.json or os.path.join("out", "benchmark.json"))
        app.run(config, stats, log=say, on_loop_end=stops.hold)
    except BaseException as exc:
        stops.hold()
        if stops.signum is None:
            if not isinstance(exc, EdgeError):
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if stats is not None:
        say(stats.format_summary())
    return 0 if stops.signum is None else 128 + stops.signum


def run_benchmark(config: Config, runs: int, report_path: str) -> int:
    """trtexec-style timing of the whole loop on the configured input; the JSON report goes to `report_path`,
    checked before the timing starts."""
    from edge.app.benchmark import benchmark, decode_frames, format_report
    from edge.io.uri import names_photos
    from edge.io.sinks import output_path

    if runs < 1:
        raise ConfigError(f"--benchmark RUNS must be >= 1, got {runs}")
    output_path(report_path, "--json")
    say = partial(print, flush=True)
    images = decode_frames(config.source.input, config.source.max_frames, log=say)
    print(f"benchmark: {len(images)} frames from {config.source.input} decoded; {runs} timed runs", flush=True)
    report = benchmark(images, config, runs, log=say, stills=config.stills.applies_to(names_photos(config.source.input)))
    print(format_report(report))
    try:
        with open(report_path, "w") as f:
            json.dump(report, f, indent=1)
    except OSError as exc:
        raise ConfigError(f"--json {report_path}: cannot write the report ({exc.strerror}); it is printed above") \
            from exc
    print(f"report: {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

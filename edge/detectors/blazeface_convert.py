"""MediaPipe's BlazeFace .tflite -> ONNX, so the detector runs on the same Engine backends as ATPN.

`tflite2onnx` fails on the full-range model (its 1x1 kernels are stored sparse behind DENSIFY ops),
and the two models use only a dozen ops, so we translate them ourselves: read the flatbuffer with
the `tflite` package, fold every constant (float16 DEQUANTIZE, DENSIFY of CSR-sparse weights) into
float32 initializers, and rewrite NHWC ops as NCHW ONNX ops with explicit TensorFlow SAME pads.
The ONNX takes `image` [batch,3,H,W] float32 (RGB in [-1,1]) and gives `regressors` [batch,A,16]
and `classificators` [batch,A,1] (logits), named after MediaPipe's tensors. Same input, same bytes.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edge.assets import FACE_FULL_TFLITE, FACE_SHORT_TFLITE, WheelMember, fetch
from edge.fileio import write_atomic
from edge.errors import EdgeError, ModelError

OPSET = 13
INPUT_NAME = "image"
REGRESSORS = "regressors"  # per anchor: box (dx, dy, w, h) then 6 keypoints (x, y), in input pixels
CLASSIFICATORS = "classificators"  # per anchor: face logit
NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)  # where NHWC axis i lives in NCHW

METADATA_KEY = "blazeface"  # JSON: variant ("short"/"full"), source wheel member and its SHA-256


@dataclass(frozen=True)
class Variant:
    """One of MediaPipe's two face detectors and the ONNX file it becomes."""

    name: str  # "short" (128 px, faces within ~2 m) or "full" (192 px, farther faces)
    tflite: WheelMember
    onnx_name: str


VARIANTS = (Variant("short", FACE_SHORT_TFLITE, "blazeface_short.onnx"),
            Variant("full", FACE_FULL_TFLITE, "blazeface_full.onnx"))

_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_ACTIVATIONS = {0: None, 1: "Relu", 3: "Relu6"}
_VALID = 1  # tflite Padding: SAME = 0, VALID = 1


def face_detectors(models_dir: Path) -> str:
    """`make models` step: fetch both .tflite files, convert each unless its ONNX is newer than this converter."""
    sources = fetch(models_dir, [v.tflite for v in VARIANTS])
    done = []
    for variant, source in zip(VARIANTS, sources):
        out = Path(models_dir) / variant.onnx_name
        if out.is_file() and os.path.getmtime(out) >= os.path.getmtime(__file__):
            done.append(f"{out.name} (cached)")
            continue
        meta = {"variant": variant.name, "source": f"{variant.tflite.requirement}:{variant.tflite.member}",
                "source_sha256": variant.tflite.sha256}
        convert(source, out, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
        done.append(f"{out.name} (converted)")
    return f"{models_dir}: " + ", ".join(done)


def convert(tflite_path: Path, onnx_path: Path, metadata: Mapping[str, str]) -> None:
    """Translate one BlazeFace .tflite into an ONNX file (written whole or not at all)."""
    try:
        import onnx
        import tflite
    except ImportError as exc:
        raise EdgeError(f"converting the face detector needs {exc.name}: pip install -r requirements.txt") from exc
    data = Path(tflite_path).read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = _Translator(model, tflite).run()
    except ModelError as exc:
        raise ModelError(f"{tflite_path}: {exc}") from exc
    except (IndexError, ValueError, AttributeError, struct.error) as exc:  # flatbuffers on a damaged file
        raise ModelError(f"{tflite_path}: not a readable TFLite model ({exc}); delete it and run `make models`") from exc
    proto = onnx.helper.make_model(graph, producer_name="atpn-edge blazeface_convert",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = 7  # readable by ONNX Runtime >= 1.10 and TensorRT 8 on JetPack
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto)
    write_atomic(str(onnx_path), proto.SerializeToString())


class _Translator:
    """One pass over the subgraph's operators, emitting ONNX nodes; activations are NCHW at rank 4."""

    def __init__(self, model: object, tfl: object) -> None:
        self.model, self.tfl = model, tfl
        self.sub = model.Subgraphs(0)  # type: ignore[attr-defined]
        self.consts: Dict[int, np.ndarray] = {}
        self.nodes: List[object] = []
        self.inits: List[object] = []
        self.names: Dict[int, str] = {}
        self.ops: Dict[str, Callable[[object, List[int], List[int]], None]] = {
            "DEQUANTIZE": self._dequantize, "DENSIFY": self._densify, "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._depthwise, "ADD": self._add, "RELU": self._relu, "PAD": self._pad,
            "MAX_POOL_2D": self._max_pool, "RESIZE_BILINEAR": self._resize, "DEPTH_TO_SPACE": self._depth_to_space,
            "RESHAPE": self._reshape, "CONCATENATION": self._concat}
        self.opnames = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}  # type: ignore

    def run(self) -> object:
        from onnx import TensorProto, helper

        sub = self.sub
        if self.model.SubgraphsLength() != 1 or sub.InputsLength() != 1 or sub.OutputsLength() != 2:  # type: ignore
            raise ModelError("expected one subgraph with one input and two outputs (a BlazeFace detector)")
        (inp,) = sub.InputsAsNumpy().tolist()
        self.names[inp] = INPUT_NAME
        outputs = sub.OutputsAsNumpy().tolist()
        for idx in outputs:
            self.names[idx] = REGRESSORS if self.shape(idx)[-1] == 16 else CLASSIFICATORS
        if sorted(self.names[i] for i in outputs) != [CLASSIFICATORS, REGRESSORS]:
            raise ModelError("outputs are not [1,A,16] regressors and [1,A,1] classificators (not BlazeFace)")
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())  # type: ignore[attr-defined]
            name = self.opnames.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            if name not in self.ops:
                raise ModelError(f"TFLite op {name} is not supported by this BlazeFace converter")
            self.ops[name](op, [int(t) for t in op.InputsAsNumpy() if t >= 0], op.OutputsAsNumpy().tolist())
        n, h, w, c = self.shape(inp)
        graph_in = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", c, h, w])
        graph_outs = [helper.make_tensor_value_info(self.names[i], TensorProto.FLOAT, ["batch", *self.shape(i)[1:]])
                      for i in sorted(outputs, key=lambda i: self.names[i] != REGRESSORS)]
        return helper.make_graph(self.nodes, "blazeface", [graph_in], graph_outs, self.inits)

    # --- tensors -------------------------------------------------------------------------------
    def shape(self, idx: int) -> List[int]:
        t = self.sub.Tensors(idx)  # type: ignore[attr-defined]
        return t.ShapeAsNumpy().tolist() if t.ShapeLength() else []

    def name(self, idx: int) -> str:
        return self.names.setdefault(idx, f"t{idx}")

    def const(self, idx: int) -> np.ndarray:
        """A constant operand: folded earlier, or read from its flatbuffer buffer."""
        if idx in self.consts:
            return self.consts[idx]
        t = self.sub.Tensors(idx)  # type: ignore[attr-defined]
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()  # type: ignore[attr-defined]
        if isinstance(raw, int) or t.Type() not in _NUMPY_TYPES:
            raise ModelError(f"tensor {t.Name().decode()} should be a constant with data, but has none")
        values = np.frombuffer(raw.tobytes(), dtype=_NUMPY_TYPES[t.Type()])
        return values if t.Sparsity() is not None else values.reshape(self.shape(idx))

    def is_const(self, idx: int) -> bool:
        buffer = self.model.Buffers(self.sub.Tensors(idx).Buffer())  # type: ignore[attr-defined]
        return idx in self.consts or buffer.DataLength() > 0

    def initializer(self, array: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def emit(self, op_type: str, inputs: Sequence[str], output: str, **attrs: object) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return output

    def options(self, op: object, cls_name: str) -> object:
        table = op.BuiltinOptions()  # type: ignore[attr-defined]
        opts = getattr(self.tfl, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def activate(self, x: str, fused: int, out: int) -> None:
        """Apply a fused activation (or none) so that the op's result lands on tensor `out`."""
        if fused not in _ACTIVATIONS:
            raise ModelError(f"fused activation {fused} is not supported by this BlazeFace converter")
        kind = _ACTIVATIONS[fused]
        if kind is None:
            self.emit("Identity", [x], self.name(out))
        elif kind == "Relu":
            self.emit("Relu", [x], self.name(out))
        else:
            lo = self.initializer(np.array(0, np.float32), f"t{out}_lo")
            hi = self.initializer(np.array(6, np.float32), f"t{out}_hi")
            self.emit("Clip", [x, lo, hi], self.name(out))

    # --- ops -----------------------------------------------------------------------------------
    def _dequantize(self, op: object, ins: List[int], outs: List[int]) -> None:
        self.consts[outs[0]] = self.const(ins[0]).astype(np.float32)

    def _densify(self, op: object, ins: List[int], outs: List[int]) -> None:
        sparsity = self.sub.Tensors(ins[0]).Sparsity()  # type: ignore[attr-defined]
        self.consts[outs[0]] = densify(self.const(ins[0]), self.shape(ins[0]), sparsity, self.tfl)

    def _conv(self, op: object, ins: List[int], outs: List[int]) -> None:
        """[O,KH,KW,I] kernel -> [O,I,KH,KW]."""
        kernel = self.const(ins[1]).astype(np.float32)
        self.convolution(self.options(op, "Conv2DOptions"), ins, outs, kernel.transpose(0, 3, 1, 2), 1)

    def _depthwise(self, op: object, ins: List[int], outs: List[int]) -> None:
        """[1,KH,KW,C*M] kernel -> [C*M,1,KH,KW], one group per input channel."""
        kernel = self.const(ins[1]).astype(np.float32)
        weight = kernel[0].transpose(2, 0, 1)[:, None]
        self.convolution(self.options(op, "DepthwiseConv2DOptions"), ins, outs, weight, self.shape(ins[0])[3])

    def convolution(self, opts: object, ins: List[int], outs: List[int], weight: np.ndarray, group: int) -> None:
        strides = [opts.StrideH(), opts.StrideW()]  # type: ignore[attr-defined]
        dilations = [opts.DilationHFactor(), opts.DilationWFactor()]  # type: ignore[attr-defined]
        pads = self.pads(opts.Padding(), ins[0], weight.shape[2:], strides, dilations)  # type: ignore[attr-defined]
        inputs = [self.name(ins[0]), self.initializer(weight, f"t{ins[1]}_w")]
        if len(ins) > 2:
            inputs.append(self.initializer(self.const(ins[2]).astype(np.float32), f"t{ins[2]}_b"))
        y = self.emit("Conv", inputs, f"t{outs[0]}_conv", strides=strides, dilations=dilations, pads=pads, group=group)
        self.activate(y, opts.FusedActivationFunction(), outs[0])  # type: ignore[attr-defined]

    def pads(self, padding: int, x: int, kernel: Sequence[int], strides: List[int], dilations: List[int]) -> List[int]:
        """TensorFlow SAME puts the odd pixel at the end; ONNX wants it spelled out."""
        if padding == _VALID:
            return [0, 0, 0, 0]
        begin, end = [], []
        for size, k, s, d in zip(self.shape(x)[1:3], kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return begin + end

    def _max_pool(self, op: object, ins: List[int], outs: List[int]) -> None:
        opts = self.options(op, "Pool2DOptions")
        kernel, strides = [opts.FilterHeight(), opts.FilterWidth()], [opts.StrideH(), opts.StrideW()]
        pads = self.pads(opts.Padding(), ins[0], kernel, strides, [1, 1])
        y = self.emit("MaxPool", [self.name(ins[0])], f"t{outs[0]}_pool", kernel_shape=kernel, strides=strides, pads=pads)
        self.activate(y, opts.FusedActivationFunction(), outs[0])

    def _add(self, op: object, ins: List[int], outs: List[int]) -> None:
        if any(self.is_const(i) for i in ins):
            raise ModelError("ADD with a constant operand is not supported by this BlazeFace converter")
        opts = self.options(op, "AddOptions")
        y = self.emit("Add", [self.name(i) for i in ins], f"t{outs[0]}_add")
        self.activate(y, opts.FusedActivationFunction(), outs[0])

    def _relu(self, op: object, ins: List[int], outs: List[int]) -> None:
        self.emit("Relu", [self.name(ins[0])], self.name(outs[0]))

    def _pad(self, op: object, ins: List[int], outs: List[int]) -> None:
        nhwc = self.const(ins[1]).reshape(4, 2).astype(np.int64)
        nchw = nhwc[list(np.argsort(NHWC_TO_NCHW_AXIS))]  # rows in NCHW order
        pads = self.initializer(np.concatenate([nchw[:, 0], nchw[:, 1]]), f"t{outs[0]}_pads")
        self.emit("Pad", [self.name(ins[0]), pads], self.name(outs[0]), mode="constant")

    def _resize(self, op: object, ins: List[int], outs: List[int]) -> None:
        opts = self.options(op, "ResizeBilinearOptions")
        mode = "half_pixel" if opts.HalfPixelCenters() else "align_corners" if opts.AlignCorners() else "asymmetric"
        (_, ih, iw, _), (_, oh, ow, _) = self.shape(ins[0]), self.shape(outs[0])
        scales = self.initializer(np.array([1, 1, oh / ih, ow / iw], np.float32), f"t{outs[0]}_scales")
        roi = self.initializer(np.zeros(0, np.float32), f"t{outs[0]}_roi")
        self.emit("Resize", [self.name(ins[0]), roi, scales], self.name(outs[0]), mode="linear",
                  coordinate_transformation_mode=mode)

    def _depth_to_space(self, op: object, ins: List[int], outs: List[int]) -> None:
        opts = self.options(op, "DepthToSpaceOptions")
        self.emit("DepthToSpace", [self.name(ins[0])], self.name(outs[0]), blocksize=opts.BlockSize(), mode="DCR")

    def _reshape(self, op: object, ins: List[int], outs: List[int]) -> None:
        """Only the heads' NHWC [1,H,W,C] -> [1,H*W*k,C/k]: back to NHWC order, then flatten."""
        target = self.shape(outs[0])
        if len(self.shape(ins[0])) != 4 or len(target) == 4 or target[0] != 1:
            raise ModelError(f"RESHAPE {self.shape(ins[0])} -> {target} is not a BlazeFace head reshape")
        nhwc = self.emit("Transpose", [self.name(ins[0])], f"t{outs[0]}_nhwc", perm=[0, 2, 3, 1])
        shape = self.initializer(np.array([-1] + target[1:], np.int64), f"t{outs[0]}_shape")
        self.emit("Reshape", [nhwc, shape], self.name(outs[0]))

    def _concat(self, op: object, ins: List[int], outs: List[int]) -> None:
        opts = self.options(op, "ConcatenationOptions")
        rank = len(self.shape(outs[0]))
        axis = opts.Axis() % rank
        if rank == 4:
            axis = NHWC_TO_NCHW_AXIS[axis]
        y = self.emit("Concat", [self.name(i) for i in ins], f"t{outs[0]}_cat", axis=axis)
        self.activate(y, opts.FusedActivationFunction(), outs[0])


def densify(values: np.ndarray, shape: Sequence[int], sparsity: Optional[object], tfl: object) -> np.ndarray:
    """A TFLite sparse tensor (DENSE / SPARSE_CSR dimensions, no blocks) as a dense array.

    Walk the dimensions in traversal order: a DENSE one repeats every parent position `size`
    times, a CSR one gives parent p the children segments[p]:segments[p+1] at the stored indices.
    The values are stored in the order of the resulting positions.
    """
    if sparsity is None:
        raise ModelError("DENSIFY of a tensor without sparsity parameters")
    order = sparsity.TraversalOrderAsNumpy()  # type: ignore[attr-defined]
    if sparsity.BlockMapLength() or len(order) != len(shape):  # type: ignore[attr-defined]
        raise ModelError("block-sparse tensors are not supported by this BlazeFace converter")
    coords = np.zeros((1, 0), np.int64)
    for level in range(sparsity.DimMetadataLength()):  # type: ignore[attr-defined]
        dim = sparsity.DimMetadata(level)  # type: ignore[attr-defined]
        if dim.Format() == tfl.DimensionType.DENSE:  # type: ignore[attr-defined]
            n = dim.DenseSize()
            child = np.tile(np.arange(n), len(coords))
            coords = np.repeat(coords, n, axis=0)
        else:
            segments = _index_vector(dim.ArraySegments(), dim.ArraySegmentsType(), tfl)
            child = _index_vector(dim.ArrayIndices(), dim.ArrayIndicesType(), tfl)
            if len(segments) != len(coords) + 1 or segments[-1] != len(child):
                raise ModelError("corrupt CSR sparsity metadata in a TFLite tensor")
            coords = np.repeat(coords, np.diff(segments), axis=0)
        coords = np.concatenate([coords, child[:, None]], axis=1)
    if len(coords) != values.size:
        raise ModelError(f"sparse tensor has {values.size} values for {len(coords)} positions")
    dense = np.zeros(shape, values.dtype)
    dense[tuple(coords[:, np.argsort(order)].T)] = values
    return dense


def _index_vector(table: object, kind: int, tfl: object) -> np.ndarray:
    """Read a SparseIndexVector union (Int32Vector, Uint16Vector or Uint8Vector) as int64."""
    classes = {tfl.SparseIndexVector.Int32Vector: "Int32Vector",  # type: ignore[attr-defined]
               tfl.SparseIndexVector.Uint16Vector: "Uint16Vector",  # type: ignore[attr-defined]
               tfl.SparseIndexVector.Uint8Vector: "Uint8Vector"}  # type: ignore[attr-defined]
    if kind not in classes or table is None:
        raise ModelError(f"unsupported sparse index vector type {kind} in a TFLite tensor")
    vec = getattr(tfl, classes[kind])()
    vec.Init(table.Bytes, table.Pos)  # type: ignore[attr-defined]
    return np.asarray(vec.ValuesAsNumpy(), dtype=np.int64)

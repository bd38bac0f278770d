"""Read a float TensorFlow Lite graph (one subgraph) into plain Python data.

Only what a PyTorch port needs: tensors (name, shape, constant data as float32/int32
numpy), operators (kind, input/output tensor indices, the builtin options that matter) in
execution order. ``DEQUANTIZE`` operators over fp16 constants are folded: their outputs
become float32 constants, so the graph seen by the builder has no dequantisation left.

Parsing goes through the ``tflite`` package (generated flatbuffer accessors for TFLite's
schema); nothing here runs a model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TFLiteTensor", "TFLiteOp", "TFLiteGraph", "read_tflite_graph", "TFLiteParseError"]

# TFLite enums used below (schema.fbs): Padding, ActivationFunctionType, TensorType
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: None, 1: "relu", 3: "relu6"}
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}

SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "RESIZE_BILINEAR", "MAX_POOL_2D",
                 "RESHAPE", "LOGISTIC")


class TFLiteParseError(ValueError):
    """The file is not a TFLite graph this reader understands (message says what is wrong)."""


@dataclass(frozen=True)
class TFLiteTensor:
    """index: position in the subgraph; shape: NHWC as stored; data: constant values
    (float32 for float tensors, fp16 dequantised; int32 for shapes/paddings) or None."""

    index: int
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None


@dataclass(frozen=True)
class TFLiteOp:
    """One operator: kind (builtin name), tensor indices, and its options, e.g.
    {"padding": "SAME", "stride": (2, 2), "activation": "relu6"} for a convolution."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    tensors: dict[int, TFLiteTensor]
    ops: list[TFLiteOp]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor_by_suffix(self, suffix: str) -> TFLiteTensor:
        """The one non-constant tensor whose name ends with `suffix` (error if 0 or > 1)."""
        hits = [t for t in self.tensors.values() if t.name.endswith(suffix) and t.data is None]
        if len(hits) != 1:
            raise TFLiteParseError(f"expected one tensor named '…{suffix}' in the graph, found {len(hits)}")
        return hits[0]


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _options(op, kind: str) -> dict:
    import tflite

    table = op.BuiltinOptions()
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions()
        o.Init(table.Bytes, table.Pos)
        out = {"padding": PADDING[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
               "dilation": (o.DilationHFactor(), o.DilationWFactor()),
               "activation": _activation(o.FusedActivationFunction())}
        if kind == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if kind == "ADD":
        o = tflite.AddOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": _activation(o.FusedActivationFunction())}
    if kind == "RESIZE_BILINEAR":
        o = tflite.ResizeBilinearOptions()
        o.Init(table.Bytes, table.Pos)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"padding": PADDING[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "kernel": (o.FilterHeight(), o.FilterWidth()),
                "activation": _activation(o.FusedActivationFunction())}
    return {}


def _activation(code: int):
    if code not in ACTIVATION:
        raise TFLiteParseError(f"fused activation {code} is not supported (only NONE, RELU, RELU6)")
    return ACTIVATION[code]


def read_tflite_graph(path: str | Path) -> TFLiteGraph:
    """Parse `path` (a .tflite file) → TFLiteGraph with DEQUANTIZE folded.

    Raises:
        TFLiteParseError: not a TFLite flatbuffer, several subgraphs, or an operator outside
            :data:`SUPPORTED_OPS`.
    """
    import tflite

    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteParseError(f"{path} is not a TensorFlow Lite model (no 'TFL3' identifier)")
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise TFLiteParseError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    names = _builtin_names()

    tensors: dict[int, TFLiteTensor] = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = None
        raw = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() > 0 else 0
        if not isinstance(raw, int) and raw.size:
            dtype = _NUMPY_TYPES.get(t.Type())
            if dtype is None:
                raise TFLiteParseError(f"{path}: tensor {t.Name().decode()} has unsupported type {t.Type()}")
            data = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
            data = data.astype(np.float32) if data.dtype.kind == "f" else data.astype(np.int32)
        tensors[i] = TFLiteTensor(i, t.Name().decode("utf-8", "replace"), shape, data)

    ops: list[TFLiteOp] = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = tuple(int(j) for j in op.InputsAsNumpy())
        outs = tuple(int(j) for j in op.OutputsAsNumpy())
        if kind == "DEQUANTIZE":
            src = tensors[ins[0]]
            if src.data is None:
                raise TFLiteParseError(f"{path}: DEQUANTIZE of a non-constant tensor is not supported")
            dst = tensors[outs[0]]
            tensors[outs[0]] = TFLiteTensor(dst.index, dst.name, dst.shape, src.data.astype(np.float32))
            continue
        if kind not in SUPPORTED_OPS:
            raise TFLiteParseError(f"{path}: operator {kind} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        ops.append(TFLiteOp(i, kind, ins, outs, _options(op, kind)))
    return TFLiteGraph(tensors, ops, tuple(int(j) for j in g.InputsAsNumpy()),
                       tuple(int(j) for j in g.OutputsAsNumpy()))

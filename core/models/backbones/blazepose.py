"""BlazePose GHUM "full" as a PyTorch module, built at run time from the ``.tflite`` file
inside the installed mediapipe wheel (``mediapipe/modules/pose_landmark/
pose_landmark_full.tflite``; Apache-2.0, trained by Google on real photos of people —
see ``NOTICE-blazepose.md`` beside this file). No converted weights are stored in this
repository; the ``detect`` extra (``pip install 'hmr-studio[detect]'``) brings the file.

The network (3.17 M parameters; every batch norm already folded into its convolution):

- encoder of inverted-residual blocks 256² → 128² → 64² → 32² → 16² → 8²,
- a heatmap decoder back up to 64² (bilinear up-sampling + skip additions, 48 channels)
  ending in 39 heatmaps, and a segmentation decoder to 256² (8 channels),
- a regression encoder 8² → 4² → 2² (288 channels) ending in 2×2 convolutions that give
  39 landmarks × (x, y, z, visibility, presence), 39 world landmarks × (x, y, z) and the
  pose-presence score.

For a 256² input the feature pyramid this module exposes is (stride: tensor, channels):

=======  ==============================================  ==========
stride   tensor                                          (C, H, W)
=======  ==============================================  ==========
4        heatmap decoder, last skip addition (add_11)    (48, 64, 64)
8        heatmap decoder (add_10)                        (48, 32, 32)
16       heatmap decoder (add_9)                         (48, 16, 16)
32       encoder output (add_8)                          (144, 8, 8)
"global" regression encoder output (add_22)              (288, 2, 2)
=======  ==============================================  ==========

Inputs: the project's crops — (B, 3, H, W) RGB, ImageNet-normalised (``input_norm=
"imagenet"``, the default) or in [0, 1] (``"unit"``, the network's own convention) — are
resized to 256×256 inside the module (bilinear; a 224 SPIN crop is up-sampled, so cameras
and Traces keep their 224 crop conventions). Parameters are float32 ``nn.Conv2d`` weights
under ``convs.opNNN`` (NNN = the operator's index in the TFLite graph).
"""
from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tflite_graph import TFLiteGraph, TFLiteParseError, read_tflite_graph

__all__ = ["BlazePoseGHUM", "BlazePoseOutput", "BlazePoseUnavailable", "blazepose_model_path", "blazepose_model_sha256",
           "blazepose_ghum", "BLAZEPOSE_OUTPUTS", "NUM_LANDMARKS", "PYRAMID_CHANNELS"]

MEDIAPIPE_FILE = "modules/pose_landmark/pose_landmark_full.tflite"
INSTALL_HINT = ("the BlazePose backbone is built from the pose model inside the mediapipe wheel: "
                "install the detect extra, pip install 'hmr-studio[detect]' (mediapipe==0.10.21, tflite)")
INPUT_RESOLUTION = 256
NUM_LANDMARKS = 39  # 33 body landmarks + 6 auxiliary (ROI) points
PYRAMID_CHANNELS = {4: 48, 8: 48, 16: 48, 32: 144}
GLOBAL_SHAPE = (288, 2, 2)
GLOBAL_GAIN = 10.0   # the global map's entries are small (std ≈ 0.1, 90 % zeros after its ReLU6)
POOLED_CHANNELS = int(np.prod(GLOBAL_SHAPE)) + NUM_LANDMARKS * 5 + NUM_LANDMARKS * 3   # 1464
BLAZEPOSE_OUTPUTS = ("landmarks", "presence", "segmentation", "heatmaps", "world_landmarks",
                     "pyramid", "global")

# graph tensors (name suffixes, unique among the activations of pose_landmark_full.tflite)
_PYRAMID_TENSORS = {4: "model_1/model/add_11/add", 8: "model_1/model/add_10/add",
                    16: "model_1/model/add_9/add", 32: "model_1/model/add_8/add"}
_GLOBAL_TENSOR = "model_1/model/add_22/add"
# graph outputs in order: Identity … Identity_4
_GRAPH_OUTPUTS = ("landmarks", "presence", "segmentation", "heatmaps", "world_landmarks")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class BlazePoseUnavailable(ImportError):
    """mediapipe (with its pose model) or the tflite parser is not installed."""


def blazepose_model_path() -> Path:
    """Path of ``pose_landmark_full.tflite`` in the installed mediapipe wheel (mediapipe is
    located, not imported).

    Raises:
        BlazePoseUnavailable: mediapipe or the file is missing (message names the extra).
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BlazePoseUnavailable(f"mediapipe is not installed; {INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        path = Path(root) / MEDIAPIPE_FILE
        if path.is_file():
            return path
    raise BlazePoseUnavailable(f"the installed mediapipe has no {MEDIAPIPE_FILE}; {INSTALL_HINT}")


@functools.lru_cache(maxsize=1)
def blazepose_model_sha256() -> str:
    """SHA-256 of the installed ``pose_landmark_full.tflite`` (shipped weights that leave the
    backbone to the wheel check it)."""
    import hashlib

    return hashlib.sha256(blazepose_model_path().read_bytes()).hexdigest()


@functools.lru_cache(maxsize=2)
def _read_graph(path: str) -> TFLiteGraph:
    if importlib.util.find_spec("tflite") is None:
        raise BlazePoseUnavailable(f"the 'tflite' flatbuffer parser is not installed; {INSTALL_HINT}")
    return read_tflite_graph(path)


@dataclass
class BlazePoseOutput:
    """What one forward pass computed (fields not requested are None). Batch first.

    landmarks: (B, 39, 5) x, y in pixels of the 256² network input, z (same scale,
        relative to the hips), visibility logit, presence logit.
    presence: (B,) pose-presence probability (the network's own sigmoid output).
    segmentation: (B, 1, 256, 256) person-mask logits.
    heatmaps: (B, 39, 64, 64) landmark heatmaps.
    world_landmarks: (B, 39, 3) metric 3D landmarks (metres, hip-centred).
    pyramid: {stride: (B, C, 256/stride, 256/stride)} for strides 4, 8, 16, 32
        (channels :data:`PYRAMID_CHANNELS`).
    global_map: (B, 288, 2, 2) the regression encoder's output (the landmarks are a 2×2
        convolution of it).
    """

    landmarks: torch.Tensor | None = None
    presence: torch.Tensor | None = None
    segmentation: torch.Tensor | None = None
    heatmaps: torch.Tensor | None = None
    world_landmarks: torch.Tensor | None = None
    pyramid: dict[int, torch.Tensor] = field(default_factory=dict)
    global_map: torch.Tensor | None = None


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output ceil(size/stride); the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class _Step:
    kind: str
    inputs: tuple[int, ...]
    output: int
    key: str | None = None           # conv module key
    activation: str | None = None
    same: tuple[int, int, int, int] | None = None  # (kh, kw, sh, sw) when SAME padding is runtime
    pad: tuple[int, ...] | None = None             # F.pad tuple (NCHW, last dim first)
    size: tuple[int, int] | None = None            # resize output (H, W)
    shape: tuple[int, ...] | None = None           # reshape target (without batch)
    pool: tuple[int, int, int, int] | None = None  # (kh, kw, sh, sw)


def _activate(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation == "relu6":
        return F.hardtanh(x, 0.0, 6.0, inplace=True)
    if activation == "relu":
        return F.relu(x, inplace=True)
    return x


class BlazePoseGHUM(nn.Module):
    """BlazePose GHUM full (see module docstring).

    Args:
        path: the ``.tflite`` file (default: the one in the mediapipe wheel).
        input_norm: "imagenet" (project crops) or "unit" (RGB in [0, 1]).

    Attributes:
        out_channels: 144 (the stride-32 map returned by :meth:`forward_features`).
        pooled_channels: 1464 (:meth:`forward_pooled`: the global map and the landmarks).
        pyramid_channels: {4: 48, 8: 48, 16: 48, 32: 144}.
    """

    input_resolution = INPUT_RESOLUTION
    out_channels = PYRAMID_CHANNELS[32]
    pooled_channels = POOLED_CHANNELS
    pyramid_channels = dict(PYRAMID_CHANNELS)

    def __init__(self, path: str | Path | None = None, input_norm: str = "imagenet"):
        super().__init__()
        if input_norm not in ("imagenet", "unit"):
            raise ValueError(f"input_norm must be 'imagenet' or 'unit', got {input_norm!r}")
        self.input_norm = input_norm
        path = Path(path) if path is not None else blazepose_model_path()
        if not path.is_file():
            raise BlazePoseUnavailable(f"BlazePose model file not found: {path}; {INSTALL_HINT}")
        graph = _read_graph(str(path.resolve()))
        self.convs = nn.ModuleDict()
        self._steps: list[_Step] = self._fold_pads([self._build_step(op, graph) for op in graph.ops])
        self._input = graph.inputs[0]
        self._tensor_of = self._named_tensors(graph)
        self._producer = {s.output: i for i, s in enumerate(self._steps)}
        self._plans: dict[frozenset, list[_Step]] = {}
        # channels-last: oneDNN's fast depthwise/pointwise kernels on CPU (≈1.5–2× here)
        self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ building
    def _build_step(self, op, graph: TFLiteGraph) -> _Step:
        t = graph.tensors
        x, out = op.inputs[0], op.outputs[0]
        kind, opt = op.kind, op.options
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = t[op.inputs[1]].data, t[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            if w is None:
                raise TFLiteParseError(f"operator {op.index}: convolution weights are not constant")
            if kind == "CONV_2D":  # OHWI → OIHW
                weight = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
                groups = 1
                c_in = weight.shape[1]
            else:  # 1HW(C·m) → (C·m)1HW
                if opt["depth_multiplier"] != 1:
                    raise TFLiteParseError(f"operator {op.index}: depth multiplier {opt['depth_multiplier']} unsupported")
                weight = np.ascontiguousarray(w.transpose(3, 0, 1, 2))
                groups = c_in = weight.shape[0]
            c_out, _, kh, kw = weight.shape
            (sh, sw), (dh, dw) = opt["stride"], opt["dilation"]
            padding, same = 0, None
            if opt["padding"] == "SAME":
                if sh == sw == 1 and kh % 2 == 1 and kw % 2 == 1:
                    padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
                else:
                    same = (kh, kw, sh, sw)
            conv = nn.Conv2d(c_in, c_out, (kh, kw), (sh, sw), padding, (dh, dw), groups, bias=b is not None)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(weight))
                if b is not None:
                    conv.bias.copy_(torch.from_numpy(b.reshape(-1)))
            key = f"op{op.index:03d}"
            self.convs[key] = conv
            return _Step("conv", (x,), out, key=key, activation=opt["activation"], same=same)
        if kind == "ADD":
            return _Step("add", op.inputs[:2], out, activation=opt["activation"])
        if kind == "PAD":
            pads = t[op.inputs[1]].data
            if pads is None or pads.shape != (4, 2) or pads[0].any():
                raise TFLiteParseError(f"operator {op.index}: only constant NHWC spatial/channel padding is supported")
            (top, bottom), (left, right), (front, back) = pads[1], pads[2], pads[3]
            return _Step("pad", (x,), out, pad=tuple(int(v) for v in (left, right, top, bottom, front, back)))
        if kind == "RESIZE_BILINEAR":
            if opt["align_corners"] or not opt["half_pixel_centers"]:
                raise TFLiteParseError(f"operator {op.index}: only half-pixel-centre bilinear resizing is supported")
            return _Step("resize", (x,), out, size=tuple(int(v) for v in t[out].shape[1:3]))
        if kind == "MAX_POOL_2D":
            if opt["padding"] != "VALID":
                raise TFLiteParseError(f"operator {op.index}: only VALID max pooling is supported")
            return _Step("maxpool", (x,), out, pool=(*opt["kernel"], *opt["stride"]), activation=opt["activation"])
        if kind == "RESHAPE":
            return _Step("reshape", (x,), out, shape=tuple(int(v) for v in t[out].shape[1:]))
        if kind == "LOGISTIC":
            return _Step("sigmoid", (x,), out)
        raise TFLiteParseError(f"operator {op.index}: {kind} unsupported")

    def _fold_pads(self, steps: list[_Step]) -> list[_Step]:
        """A symmetric spatial zero PAD read only by a VALID convolution becomes that
        convolution's own padding (same result, no padded copy)."""
        readers: dict[int, list[int]] = {}
        for i, s in enumerate(steps):
            for t in s.inputs:
                readers.setdefault(t, []).append(i)
        by_index = dict(enumerate(steps))
        for i, s in enumerate(steps):
            if s.kind != "pad":
                continue
            left, right, top, bottom, front, back = s.pad
            users = readers.get(s.output, [])
            if len(users) != 1 or left != right or top != bottom or front or back:
                continue
            user = by_index[users[0]]
            conv = self.convs[user.key] if user.kind == "conv" else None
            if conv is None or user.same is not None or conv.padding != (0, 0):
                continue
            conv.padding = (top, left)
            by_index[users[0]] = _Step("conv", s.inputs, user.output, key=user.key, activation=user.activation)
            del by_index[i]
        return [by_index[i] for i in sorted(by_index)]

    @staticmethod
    def _named_tensors(graph: TFLiteGraph) -> dict[str, int]:
        named = {}
        if len(graph.outputs) != len(_GRAPH_OUTPUTS):
            raise TFLiteParseError(f"expected {len(_GRAPH_OUTPUTS)} graph outputs, found {len(graph.outputs)}")
        expected = {"landmarks": (1, NUM_LANDMARKS * 5), "presence": (1, 1),
                    "segmentation": (1, 256, 256, 1), "heatmaps": (1, 64, 64, NUM_LANDMARKS),
                    "world_landmarks": (1, NUM_LANDMARKS * 3)}
        for name, idx in zip(_GRAPH_OUTPUTS, graph.outputs):
            if graph.tensors[idx].shape != expected[name]:
                raise TFLiteParseError(f"graph output {name}: shape {graph.tensors[idx].shape}, "
                                       f"expected {expected[name]} (is this pose_landmark_full.tflite?)")
            named[name] = idx
        for stride, suffix in _PYRAMID_TENSORS.items():
            tensor = graph.tensor_by_suffix(suffix)
            side = INPUT_RESOLUTION // stride
            if tensor.shape != (1, side, side, PYRAMID_CHANNELS[stride]):
                raise TFLiteParseError(f"pyramid tensor {suffix}: shape {tensor.shape}")
            named[f"pyramid{stride}"] = tensor.index
        tensor = graph.tensor_by_suffix(_GLOBAL_TENSOR)
        if tensor.shape != (1, GLOBAL_SHAPE[1], GLOBAL_SHAPE[2], GLOBAL_SHAPE[0]):
            raise TFLiteParseError(f"global tensor {_GLOBAL_TENSOR}: shape {tensor.shape}")
        named["global"] = tensor.index
        return named

    def _plan(self, targets: frozenset) -> list[_Step]:
        """The steps needed for the target tensors, in graph order (cached)."""
        plan = self._plans.get(targets)
        if plan is None:
            needed, stack = set(), list(targets)
            while stack:
                i = self._producer.get(stack.pop())
                if i is not None and i not in needed:
                    needed.add(i)
                    stack.extend(self._steps[i].inputs)
            plan = [self._steps[i] for i in sorted(needed)]
            self._plans[targets] = plan
        return plan

    # ------------------------------------------------------------------ running
    def prepare_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) project crops → (B, 3, 256, 256) RGB in [0, 1] (the network's input)."""
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"BlazePose expects float crops of shape (B, 3, H, W), got {got}")
        x = images
        if self.input_norm == "imagenet":
            mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
            std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
            x = x * std + mean
        if tuple(x.shape[2:]) != (INPUT_RESOLUTION, INPUT_RESOLUTION):
            shrink = min(x.shape[2:]) > INPUT_RESOLUTION
            x = F.interpolate(x, size=(INPUT_RESOLUTION, INPUT_RESOLUTION), mode="bilinear",
                              align_corners=False, antialias=shrink)
        return x.contiguous(memory_format=torch.channels_last)

    def _run(self, x: torch.Tensor, targets: frozenset) -> dict[int, torch.Tensor]:
        env = {self._input: x}
        for s in self._plan(targets):
            a = env[s.inputs[0]]
            if s.kind == "conv":
                conv = self.convs[s.key]
                if s.same is not None:
                    kh, kw, sh, sw = s.same
                    top, bottom = _same_padding(a.shape[2], kh, sh, conv.dilation[0])
                    left, right = _same_padding(a.shape[3], kw, sw, conv.dilation[1])
                    a = F.pad(a, (left, right, top, bottom))
                y = _activate(conv(a), s.activation)
            elif s.kind == "add":
                y = _activate(a + env[s.inputs[1]], s.activation)
            elif s.kind == "pad":
                y = F.pad(a, s.pad)
            elif s.kind == "resize":
                y = F.interpolate(a, size=s.size, mode="bilinear", align_corners=False)
            elif s.kind == "maxpool":
                kh, kw, sh, sw = s.pool
                y = _activate(F.max_pool2d(a, (kh, kw), (sh, sw)), s.activation)
            elif s.kind == "reshape":  # TFLite reshapes NHWC memory order
                src = a.permute(0, 2, 3, 1) if a.ndim == 4 else a
                y = src.reshape(a.shape[0], *s.shape)
            else:  # sigmoid
                y = torch.sigmoid(a)
            env[s.output] = y
        return env

    def forward(self, images: torch.Tensor, outputs=BLAZEPOSE_OUTPUTS) -> BlazePoseOutput:
        """Run the network on project crops (see :meth:`prepare_input`).

        Args:
            images: (B, 3, H, W) float crops.
            outputs: any of :data:`BLAZEPOSE_OUTPUTS`; only the operators they need run.
        Returns:
            BlazePoseOutput (unrequested fields None / empty).
        """
        return self.forward_prepared(self.prepare_input(images), outputs)

    def forward_prepared(self, x: torch.Tensor, outputs=BLAZEPOSE_OUTPUTS) -> BlazePoseOutput:
        """As :meth:`forward` on an already prepared (B, 3, 256, 256) [0, 1] input."""
        x = x.contiguous(memory_format=torch.channels_last)
        if isinstance(outputs, str):
            outputs = (outputs,)
        unknown = set(outputs) - set(BLAZEPOSE_OUTPUTS)
        if unknown:
            raise ValueError(f"unknown BlazePose outputs {sorted(unknown)}; choose from {BLAZEPOSE_OUTPUTS}")
        tensor_names = [f"pyramid{s}" for s in PYRAMID_CHANNELS] if "pyramid" in outputs else []
        tensor_names += [o for o in outputs if o != "pyramid"]
        targets = frozenset(self._tensor_of[n] for n in tensor_names)
        env = self._run(x, targets)
        got = {n: env[self._tensor_of[n]] for n in tensor_names}
        B = x.shape[0]
        out = BlazePoseOutput()
        if "landmarks" in got:
            out.landmarks = got["landmarks"].reshape(B, NUM_LANDMARKS, 5)
        if "presence" in got:
            out.presence = got["presence"].reshape(B)
        if "segmentation" in got:
            out.segmentation = got["segmentation"]
        if "heatmaps" in got:
            out.heatmaps = got["heatmaps"]
        if "world_landmarks" in got:
            out.world_landmarks = got["world_landmarks"].reshape(B, NUM_LANDMARKS, 3)
        if "global" in got:
            out.global_map = got["global"]
        out.pyramid = {s: got[f"pyramid{s}"] for s in PYRAMID_CHANNELS if f"pyramid{s}" in got}
        return out

    def branch_parameters(self, output: str, shared_with: tuple = ("pyramid",)) -> list[nn.Parameter]:
        """Parameters used for `output` and by none of `shared_with` — e.g.
        ``branch_parameters("global")``: the regression branch (8² → 4² → 2², and the
        landmark heads with "landmarks"), which can be fine-tuned cheaply while the encoder
        and decoder stay frozen (its maps are tiny)."""
        def keys(names) -> set[str]:
            tensors = [self._tensor_of[f"pyramid{s}"] for s in PYRAMID_CHANNELS] if "pyramid" in names else []
            tensors += [self._tensor_of[n] for n in names if n != "pyramid"]
            return {st.key for st in self._plan(frozenset(tensors)) if st.key is not None}
        own = keys((output,)) - keys(tuple(shared_with))
        return [p for k in sorted(own) for p in self.convs[k].parameters()]

    def pooled_branch_parameters(self) -> list[nn.Parameter]:
        """The parameters :meth:`forward_pooled` uses that the feature pyramid does not."""
        seen, out = set(), []
        for name in ("global", "landmarks", "world_landmarks"):
            for p in self.branch_parameters(name):
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    # ------------------------------------------------------------------ backbone protocol
    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → the stride-32 encoder map (B, 144, 8, 8)."""
        return self.forward(images, ("pyramid",)).pyramid[32]

    def forward_pyramid(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        """(B, 3, H, W) → {4: (B,48,64,64), 8: (B,48,32,32), 16: (B,48,16,16), 32: (B,144,8,8)}."""
        return self.forward(images, ("pyramid",)).pyramid

    def forward_pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 1464): what the network knows about the whole body, for a
        regression head —

        * the 2×2×288 global map (channel-major, × :data:`GLOBAL_GAIN` = 10: its entries
          are small and mostly zero), 1152 values;
        * its 39 landmarks as (x/256, y/256, z/256, σ(visibility), σ(presence)), 195 values;
        * its 39 world landmarks (metres, hip-centred), 117 values.

        The landmarks are linear in the global map, but given explicitly a head starts from
        the joints' 2D and 3D positions instead of having to find them in a sparse code.
        """
        o = self.forward(images, ("global", "landmarks", "world_landmarks"))
        lm = o.landmarks
        lm = torch.cat([lm[..., :3] / INPUT_RESOLUTION, torch.sigmoid(lm[..., 3:5])], dim=-1)
        return torch.cat([o.global_map.flatten(1) * GLOBAL_GAIN, lm.flatten(1), o.world_landmarks.flatten(1)], dim=1)


def blazepose_ghum(path: str | Path | None = None, input_norm: str = "imagenet") -> BlazePoseGHUM:
    """The BlazePose GHUM full backbone with its pretrained weights (see BlazePoseGHUM)."""
    return BlazePoseGHUM(path, input_norm)

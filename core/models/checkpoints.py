"""Reading official checkpoints (SPIN, PyMAF, CLIFF, Meta-HMR) with strict key/shape checks
and a readable report; saving/loading the project's own checkpoints (safetensors + JSON).

Official files are `torch.save` pickles (SPIN's in the legacy non-zip format, tensors on
`cuda:0`); they are read with ``torch.load(weights_only=True, map_location="cpu")`` — no
arbitrary code runs, nothing needs a GPU.
"""
from __future__ import annotations

import json
import re
import warnings
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "CheckpointError", "CheckpointMismatch", "LoadReport",
    "read_checkpoint_file", "extract_state_dict", "detect_architecture",
    "load_state_dict_strict", "load_official_checkpoint", "load_spin_checkpoint",
    "load_pymaf_checkpoint", "load_cliff_checkpoint", "load_meta_hmr_checkpoint",
    "save_checkpoint", "load_project_checkpoint", "read_project_config",
]

PROJECT_FORMAT = "hmr-studio-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (unreadable, truncated, wrong content)."""


class CheckpointMismatch(CheckpointError):
    """State-dict keys/shapes differ from the model's.

    Attributes: missing (keys the model needs), unexpected (keys the model lacks),
    mismatched [(key, checkpoint shape, model shape)], hints (known causes).
    """

    def __init__(self, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple, tuple]], source: str = "",
                 hints: list[str] | None = None, header: str = ""):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        self.source, self.hints = source, hints or []
        super().__init__(format_mismatch_report(missing, unexpected, mismatched, source, self.hints, header))


@dataclass
class LoadReport:
    """What a load did: the file, which entry held the weights, how many tensors were
    loaded, keys filled from the model (old BN files without num_batches_tracked), keys
    deliberately ignored, a stripped `module.` prefix, and the file's scalar metadata."""

    source: str
    entry: str | None
    num_tensors: int
    filled: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    stripped_prefix: str = ""
    metadata: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- reading
def read_checkpoint_file(path) -> object:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with clear errors for a
    missing, empty, truncated/corrupt file or one holding arbitrary Python objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes) — the download or copy failed")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for damaged files
        text = f"{type(exc).__name__}: {exc}"
        lower = text.lower()
        damaged = any(k in lower for k in ("truncated", "eof", "end of file", "central directory", "failed reading"))
        with open(path, "rb") as f:
            is_pickle = f.read(1) == b"\x80"          # a pickle's PROTO opcode (zip files start "PK")
        refused = "unsupported global" in lower or (is_pickle and (
            "unsupported operand" in lower or "weights only load failed" in lower))
        if refused and not damaged:
            raise CheckpointError(
                f"{path} holds Python objects or instructions other than tensors and plain containers "
                f"(a file saved with whole objects, or a tampered one), so it was not unpickled and "
                f"nothing in it ran (safe loading, weights_only=True). Re-save only the state dict "
                f"(torch.save({{'model': model.state_dict()}}, ...)). Detail: {_pickle_detail(text)}") from exc
        raise CheckpointError(
            f"could not read checkpoint {path} ({size:,} bytes): the file looks truncated or "
            f"corrupt (an interrupted download?), or not a PyTorch checkpoint. Download it again. "
            f"Detail: {_pickle_detail(text)}") from exc


def _pickle_detail(text: str) -> str:
    """The informative line of torch's long weights_only error."""
    for line in text.splitlines():
        if line.startswith(("Unsupported global", "Unsupported operand")) or "GLOBAL" in line:
            return line.strip()[:300]
    return text[:300]


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def extract_state_dict(obj, entry: str | None = None, source: str = "") -> tuple[dict, str | None]:
    """The state dict inside a loaded checkpoint.

    Args:
        obj: what :func:`read_checkpoint_file` returned.
        entry: the top-level key holding it ("model", "model_aux", …); None = auto
            ("model", then "state_dict", then the object itself).
    Returns:
        (state dict, the entry used or None).
    """
    where = f" in {source}" if source else ""
    if entry is not None:
        if not isinstance(obj, Mapping) or entry not in obj:
            keys = sorted(obj.keys()) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"no '{entry}' entry{where}; top-level keys: {keys}")
        if not _is_state_dict(obj[entry]):
            raise CheckpointError(f"'{entry}'{where} is not a state dict (name → tensor)")
        return dict(obj[entry]), entry
    if _is_state_dict(obj):
        return dict(obj), None
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and _is_state_dict(obj[key]):
                return dict(obj[key]), key
        raise CheckpointError(f"no state dict found{where}; top-level keys: {sorted(map(str, obj.keys()))}")
    raise CheckpointError(f"no state dict found{where}: the file holds a {type(obj).__name__}")


def _strip_prefix(sd: dict, prefix: str = "module.") -> tuple[dict, str]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}, prefix
    return sd, ""


def _shape(sd: Mapping, key: str) -> tuple | None:
    v = sd.get(key)
    return tuple(v.shape) if torch.is_tensor(v) else None


def detect_architecture(sd: Mapping) -> str:
    """Best guess of what network a state dict belongs to (for error messages)."""
    keys = set(sd)
    if "maf_extractor.0.conv0.weight" in keys:
        return ("PyMAF (official layout with SMPL buffers)" if "regressor.0.smpl.shapedirs" in keys
                else "PyMAF (project layout)")
    if any(k.startswith("encoders.body") for k in keys) or "grid_points" in keys:
        return "PyMAF-X"
    fc1 = _shape(sd, "fc1.weight")
    if "encoder.conv1.weight" in keys and fc1 is not None:
        enc = "HRNet-W48" if "encoder.stage4.0.branches.0.0.conv1.weight" in keys else "ResNet-50"
        return f"CLIFF ({enc})"
    if "conv1.weight" in keys and fc1 is not None:
        extra = {2205: "", 2208: " (with bbox info: CLIFF-style)"}.get(fc1[1], f" (fc1 width {fc1[1]})")
        return f"SPIN/HMR regressor{extra}"
    if "fc.weight" in keys and "layer4.0.conv1.weight" in keys:
        return f"torchvision ResNet classifier ({_shape(sd, 'fc.weight')[0]} classes)"
    if "features.0.0.weight" in keys:
        return "torchvision MobileNetV2"
    if "stage4.0.fuse_layers.0.1.0.weight" in keys:
        return "HRNet (pose/classification)"
    if any(k.startswith("vertexpose") or "VERTEX_UPSAMPLE" in k for k in keys):
        return "MeshPose"
    return "unknown architecture"


# --------------------------------------------------------------------------- reporting
def _group(keys: Iterable[str]) -> list[str]:
    """Collapse keys that differ only in numeric components: regressor.{0,1,2}.fc1.weight."""
    groups: dict[tuple, list[list[str]]] = OrderedDict()
    for key in keys:
        parts = key.split(".")
        template = tuple("#" if p.isdigit() else p for p in parts)
        groups.setdefault(template, []).append([p for p in parts if p.isdigit()])
    lines = []
    for template, numbers in groups.items():
        values = [sorted({n[i] for n in numbers}, key=int) for i in range(len(numbers[0]))]
        it = iter(values)
        rendered = []
        for p in template:
            if p != "#":
                rendered.append(p)
                continue
            vals = next(it)
            if len(vals) == 1:
                rendered.append(vals[0])
            elif len(vals) > 6:
                rendered.append("{" + ",".join(vals[:3]) + ",…," + vals[-1] + "}")
            else:
                rendered.append("{" + ",".join(vals) + "}")
        lines.append(".".join(rendered))
    return lines


def _summarise(keys: list[str], limit: int = 16) -> list[str]:
    if not keys:
        return []
    lines = _group(keys)
    if len(lines) <= limit:
        return lines
    by_top: dict[str, list[str]] = OrderedDict()
    for k in keys:
        by_top.setdefault(k.split(".")[0], []).append(k)
    out = []
    for top, ks in by_top.items():
        sub = _group(ks)
        if len(sub) == 1:
            out.append(sub[0])
            continue
        example = ", ".join(sub[:2]) + (", …" if len(sub) > 2 else "")
        out.append(f"{top}.* — {len(ks)} keys (e.g. {example})")
    if len(out) > limit:
        out = out[: limit - 1] + [f"… and {len(out) - limit + 1} more groups"]
    return out


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def format_mismatch_report(missing, unexpected, mismatched, source="", hints=(), header="") -> str:
    lines = [header or f"checkpoint {source or ''} does not match the model".replace("  ", " ")]
    if missing:
        lines.append(f"  missing in the checkpoint ({len(missing)}):")
        lines += [f"    {line}" for line in _summarise(missing)]
    if unexpected:
        lines.append(f"  unexpected in the checkpoint ({len(unexpected)}):")
        lines += [f"    {line}" for line in _summarise(unexpected)]
    if mismatched:
        lines.append(f"  shape mismatches ({len(mismatched)}):")
        by_shapes: dict[tuple, list[str]] = defaultdict(list)
        for key, ck, md in mismatched:
            by_shapes[(ck, md)].append(key)
        for (ck, md), keys in by_shapes.items():
            for name in _group(keys):
                lines.append(f"    {name}: checkpoint {_shape_text(ck)} vs model {_shape_text(md)}")
    for hint in hints:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def _hints(model_sd: Mapping, ckpt_sd: Mapping, missing, unexpected, mismatched) -> list[str]:
    hints = []
    mine, theirs = detect_architecture(model_sd), detect_architecture(ckpt_sd)
    many = len(missing) + len(unexpected) > 0.3 * max(len(model_sd), 1)
    if many and mine.split(" (")[0] != theirs.split(" (")[0]:
        hints.append(f"this file looks like a {theirs} checkpoint, but the model is {mine} — "
                     f"load it into the matching model (core.models.create_model)")
    for key, ck, md in mismatched:
        if key.endswith("smpl.shapedirs"):
            hints.append(
                f"PyMAF keeps SMPL's shape blend shapes inside every regressor; the released "
                f"PyMAF checkpoint was built with the 10-PC SMPL (v1.0.0 SMPL_NEUTRAL.pkl from "
                f"SPIN/PyMAF's data folder). Checkpoint has {ck[-1]} PCs, model {md[-1]}: a "
                f"300-PC file comes from SMPL v1.1 / smplx's models — use the 10-PC SMPL, or "
                f"re-save the checkpoint with shapedirs[..., :10]")
            break
    for key, ck, md in mismatched:
        if key.endswith("Dmap") or re.fullmatch(r"regressor\.[12]\.fc1\.weight", key):
            hints.append(
                "PyMAF levels 1–2 take 5 features per sampling vertex (fc1 width = 5·N + 157); "
                "the checkpoint and the model sample different vertex sets — official PyMAF "
                "weights need the SMPL body (431 sampling vertices) and layout='official'")
            break
    for key, ck, md in mismatched:
        if key == "fc1.weight":
            hints.append("fc1 input width: 2205 = SPIN/HMR (2048 + 157), 2208 = CLIFF "
                         "(2048 + 3 bbox + 157); check the model type and backbone")
            break
    return hints


def load_state_dict_strict(model: nn.Module, state_dict: Mapping, source: str = "",
                           optional: Iterable[str] = ()) -> LoadReport:
    """Load with exact key and shape checking.

    A `module.` prefix on every key is stripped; BatchNorm `num_batches_tracked` entries
    absent from old files are filled from the model. Keys matching a regex in `optional`
    may be absent on either side (they are loaded when both have them, otherwise listed in
    `LoadReport.ignored`). Anything else raises :class:`CheckpointMismatch` listing
    missing/unexpected keys and shape mismatches grouped by prefix, with known causes.
    """
    sd, stripped = _strip_prefix(dict(state_dict))
    patterns = [re.compile(p) for p in optional]
    is_optional = lambda k: any(p.fullmatch(k) for p in patterns)  # noqa: E731
    model_sd = model.state_dict()
    ignored = sorted(k for k in set(sd) ^ set(model_sd) if is_optional(k))
    sd = {k: v for k, v in sd.items() if k not in ignored}
    wanted = {k: v for k, v in model_sd.items() if k not in ignored}
    filled = [k for k in wanted if k not in sd and k.endswith("num_batches_tracked")
              and k[: -len("num_batches_tracked")] + "running_mean" in sd]
    for k in filled:
        sd[k] = wanted[k]
    missing = [k for k in wanted if k not in sd]
    unexpected = [k for k in sd if k not in wanted]
    mismatched = [(k, tuple(sd[k].shape), tuple(wanted[k].shape)) for k in wanted
                  if k in sd and tuple(sd[k].shape) != tuple(wanted[k].shape)]
    if missing or unexpected or mismatched:
        raise CheckpointMismatch(missing, unexpected, mismatched, source,
                                 _hints(wanted, sd, missing, unexpected, mismatched))
    result = model.load_state_dict(sd, strict=False)
    left = [k for k in list(result.missing_keys) + list(result.unexpected_keys) if k not in ignored]
    if left:  # cannot happen after the checks above, unless the model is inconsistent
        raise CheckpointMismatch(list(result.missing_keys), list(result.unexpected_keys), [], source)
    return LoadReport(source=str(source), entry=None, num_tensors=len(sd), filled=filled,
                      ignored=ignored, stripped_prefix=stripped)


# --------------------------------------------------------------------------- official files
def _metadata(obj) -> dict:
    if not isinstance(obj, Mapping):
        return {}
    return {k: v for k, v in obj.items()
            if isinstance(k, str) and isinstance(v, (int, float, str, bool)) and not isinstance(v, Mapping)}


def load_official_checkpoint(model: nn.Module, path, entry: str | None = "model") -> LoadReport:
    """Load an official checkpoint file into `model` strictly (see
    :func:`load_state_dict_strict`) and mark the model `weights_trained = True`.

    Args:
        path: the `.pt` file.
        entry: top-level key holding the state dict ("model" for SPIN/PyMAF/CLIFF and
            Meta-HMR's main network, "model_aux" for Meta-HMR's auxiliary network,
            None = detect).
    """
    obj = read_checkpoint_file(path)
    sd, used = extract_state_dict(obj, entry, str(path))
    report = load_state_dict_strict(model, sd, source=str(path))
    report.entry, report.metadata = used, _metadata(obj)
    model.weights_trained = True
    _check_body_consistency(model)
    return report


def load_spin_checkpoint(model: nn.Module, path) -> LoadReport:
    """SPIN's `data/model_checkpoint.pt` → an `HMR` model (`checkpoint['model']`)."""
    return load_official_checkpoint(model, path, "model")


def load_pymaf_checkpoint(model: nn.Module, path) -> LoadReport:
    """PyMAF's `PyMAF_model_checkpoint.pt` → a `PyMAF(layout='official')` on the SMPL body."""
    return load_official_checkpoint(model, path, "model")


def load_cliff_checkpoint(model: nn.Module, path) -> LoadReport:
    """CLIFF's `res50-*.pt` / `hr48-*.pt` → a `CLIFF` model (`['model']`, `module.` stripped)."""
    return load_official_checkpoint(model, path, "model")


_RESNET_TRUNK = re.compile(r"(conv1|bn1|layer[1-4])\.")


def meta_hmr_kind(sd: Mapping) -> str:
    """Which of Meta-HMR's network kinds a state dict is: "hmr" (SPIN's layout, fc1 2205),
    "cliff_resnet" (the ResNet trunk at the root, fc1 2208), "cliff_hrnet" (a pose-HRNet-W48
    under ``backbone.``, fc1 880) or "unknown"."""
    sd, _ = _strip_prefix(dict(sd))
    fc1 = _shape(sd, "fc1.weight")
    if any(k.startswith("backbone.") for k in sd):
        return "cliff_hrnet"
    if "conv1.weight" in sd and fc1 is not None:
        return {2205: "hmr", 2208: "cliff_resnet"}.get(fc1[1], "unknown")
    return "unknown"


def meta_hmr_to_cliff(sd: Mapping) -> dict:
    """Meta-HMR's CLIFF-ResNet keys (trunk at the root) → the project's CLIFF-Res50 keys
    (trunk under ``encoder.``, as CLIFF's own release)."""
    sd, _ = _strip_prefix(dict(sd))
    return {("encoder." + k if _RESNET_TRUNK.match(k) else k): v for k, v in sd.items()}


def load_meta_hmr_checkpoint(model: nn.Module, path, which: str = "model") -> LoadReport:
    """Meta-HMR checkpoint: `which="model"` (main network) or `"model_aux"` (auxiliary).

    The HMR variants (``hmr_meta``, ``hmr_aux``) load into ``create_model("hmr",
    n_iter=10 / 3)``; the CLIFF-ResNet variants (``CliffMetaNet_resnet``,
    ``CliffAuxNet_resnet``: the ResNet trunk at the root of the keys) into
    ``create_model("cliff_res50", n_iter=10 / 3)``. The CLIFF-HRNet main network (a
    pose-HRNet-W48 under ``backbone.``, fc1 880 wide) has no project counterpart and is
    refused with a message saying so."""
    if which not in ("model", "model_aux"):
        raise ValueError(f"which must be 'model' or 'model_aux', got {which!r}")
    obj = read_checkpoint_file(path)
    sd, used = extract_state_dict(obj, which, str(path))
    kind = meta_hmr_kind(sd)
    if kind == "cliff_hrnet":
        raise CheckpointError(
            f"{path} ['{which}'] is Meta-HMR's CLIFF-HRNet network (a pose-HRNet-W48 under 'backbone.' with a "
            f"720-channel pooled output, fc1 880 wide): not supported — it is not CLIFF-HR48's layout. Use Meta-HMR's "
            f"HMR or CLIFF-ResNet checkpoints.")
    is_cliff = type(model).__name__ == "CLIFF"
    if kind == "cliff_resnet":
        if not is_cliff:
            raise CheckpointError(f"{path} ['{which}'] is Meta-HMR's CLIFF-ResNet network; load it into "
                                  f"create_model('cliff_res50', body, n_iter=10 for the main / 3 for the auxiliary)")
        sd = meta_hmr_to_cliff(sd)
    elif kind == "hmr" and is_cliff:
        raise CheckpointError(f"{path} ['{which}'] is Meta-HMR's HMR network (SPIN's layout); load it into "
                              f"create_model('hmr', body, n_iter=10 for the main / 3 for the auxiliary)")
    report = load_state_dict_strict(model, sd, source=f"{path} ['{which}']")
    report.entry, report.metadata = used, _metadata(obj)
    model.weights_trained = True
    return report


def _check_body_consistency(model: nn.Module) -> None:
    """Warn when PyMAF's embedded SMPL template differs from the body used for meshes."""
    body = model.__dict__.get("body")
    smpl = getattr(getattr(model, "regressor", [None])[0], "smpl", None) if hasattr(model, "regressor") else None
    if body is None or smpl is None:
        return
    from .smpl_buffers import _body_array
    template = _body_array(body, "v_template")
    if template is not None and template.shape == smpl.v_template.shape:
        if not torch.allclose(template.float(), smpl.v_template.cpu().float(), atol=1e-4):
            warnings.warn("the checkpoint's embedded SMPL template differs from the body model in use; "
                          "meshes are computed with the body model (check that it is the 10-PC SMPL)")


# --------------------------------------------------------------------------- project files
def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(model: nn.Module, path, config: Mapping | None = None,
                    trained: bool | None = None, storage_dtype: torch.dtype | None = None,
                    omit_keys: Sequence[str] = (), omitted_source: Mapping | None = None) -> Path:
    """Save `model` as safetensors + a JSON sidecar (`<path>.json` with suffix replaced),
    each written atomically (temporary file + os.replace).

    The description — format, architecture (registry name), model config, body name,
    trained flag and the caller's `config` (training notes, data, …) — is stored both in the
    safetensors metadata (the source of truth) and in the readable sidecar.

    Args:
        model: a model built by ``core.models.create_model`` (it carries `model_config`).
        path: target file, conventionally `*.safetensors`.
        config: free-form JSON-serialisable information (e.g. {"notes": ..., "epochs": ...}).
        trained: overrides `model.weights_trained` in the description.
        storage_dtype: store floating tensors in this dtype (e.g. torch.float16 to halve a
            shipped file; loading casts them back into the model's float32 parameters).
        omit_keys: state-dict entries not stored because building the model gives them
            exactly (a frozen pretrained backbone built from a file on the user's machine);
            `omitted_source` ({"file": ..., "sha256": ...}) names that file, and loading
            checks it is the same.
    Returns:
        the path written.
    """
    from safetensors.torch import save

    from core.utils.io import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_config = getattr(model, "model_config", None)
    if not model_config or "name" not in model_config:
        raise ValueError("save_checkpoint: the model has no `model_config` (build it with "
                         "core.models.create_model so it can be rebuilt when loading)")
    body = model.__dict__.get("body")
    description = {
        "format": PROJECT_FORMAT,
        "architecture": model_config["name"],
        "model_config": {k: v for k, v in model_config.items() if k != "name"},
        "body": getattr(body, "name", None),
        "weights_trained": bool(getattr(model, "weights_trained", False) if trained is None else trained),
        "config": dict(config or {}),
    }
    if storage_dtype is not None:
        description["storage_dtype"] = str(storage_dtype).replace("torch.", "")
    if omit_keys:
        if not omitted_source:
            raise ValueError("save_checkpoint: omit_keys needs omitted_source (the file that gives them)")
        description["omitted_keys"] = sorted(omit_keys)
        description["omitted_source"] = dict(omitted_source)
    text = json.dumps(description, indent=2, sort_keys=True, default=str)

    def stored(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().cpu()
        if storage_dtype is not None and v.is_floating_point():
            v = v.to(storage_dtype)
        return v.clone().contiguous()
    skip = set(omit_keys)
    tensors = {k: stored(v) for k, v in model.state_dict().items() if k not in skip}
    atomic_write_bytes(path, save(tensors, metadata={"hmr_studio": text}))
    atomic_write_bytes(_json_path(path), (text + "\n").encode())
    return path


def _check_omitted_source(path, source: Mapping) -> None:
    """The entries a file omits come from a file on this machine (e.g. the BlazePose model
    in the mediapipe wheel): it must be the very file the weights were trained with."""
    if source.get("kind") == "blazepose":
        from .backbones.blazepose import blazepose_model_sha256

        here = blazepose_model_sha256()
        if here != source.get("sha256"):
            raise CheckpointError(
                f"{path} leaves its BlazePose backbone to the mediapipe wheel's "
                f"{source.get('file', 'pose_landmark_full.tflite')} (sha256 {str(source.get('sha256'))[:12]}…), but the "
                f"installed one differs (sha256 {here[:12]}…): install {source.get('package', 'mediapipe==0.10.21')}")
        return
    raise CheckpointError(f"{path} omits entries from an unknown source {dict(source)!r}")


def read_project_config(path) -> dict:
    """The description stored with a project checkpoint (safetensors metadata, else sidecar)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"could not read {path} as safetensors (truncated or not a project "
                              f"checkpoint?): {type(exc).__name__}: {exc}") from exc
    text = meta.get("hmr_studio")
    if text is None and _json_path(path).is_file():
        text = _json_path(path).read_text()
    if text is None:
        raise CheckpointError(f"{path} has no HMR Studio description (metadata 'hmr_studio' or a "
                              f"{_json_path(path).name} sidecar)")
    description = json.loads(text)
    if description.get("format") != PROJECT_FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {description.get('format')!r}")
    return description


def load_project_checkpoint(path, body=None, **overrides) -> nn.Module:
    """Rebuild and load a model saved by :func:`save_checkpoint`.

    Args:
        path: the `.safetensors` file.
        body: the body to build on; None loads the one named in the checkpoint (the open
            body works without arguments; "smpl" needs `body=load_body("smpl", data_dir=...)`).
        overrides: model-config entries to change (e.g. n_iter).
    Returns:
        the model, `weights_trained` as recorded, `checkpoint_config` = the description.
    """
    from safetensors.torch import load_file

    from .registry import create_model

    description = read_project_config(path)
    body_name = description.get("body")
    if body is None and body_name is not None:
        from core.body import load_body
        try:
            body = load_body(body_name)
        except Exception as exc:
            raise CheckpointError(f"{path} was saved with the '{body_name}' body; pass it explicitly "
                                  f"(body=load_body('{body_name}', ...)): {exc}") from exc
    elif body is not None and body_name is not None and getattr(body, "name", body_name) != body_name:
        raise CheckpointError(f"{path} was saved with the '{body_name}' body, got a '{body.name}' body")
    cfg = {**description.get("model_config", {}), **overrides}
    model = create_model(description["architecture"], body=body, **cfg)
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"could not read the tensors of {path}: {type(exc).__name__}: {exc}") from exc
    omitted = description.get("omitted_keys") or []
    if omitted:
        _check_omitted_source(path, description.get("omitted_source") or {})
        own = model.state_dict()
        state = {**{k: own[k] for k in omitted if k in own}, **state}
    load_state_dict_strict(model, state, source=str(path))
    model.weights_trained = bool(description.get("weights_trained", False))
    model.checkpoint_config = description
    return model

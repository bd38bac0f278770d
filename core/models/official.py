"""Which official file each method takes, who publishes it, and what else it needs.

One table (:data:`OFFICIAL_CHECKPOINTS`) for the UI's labels, the start-up check's messages
and the README's "Using the official models" section. Facts from the official code
(``../shared/reference/official_files.md``); the project ships no official file.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OfficialFile", "OFFICIAL_CHECKPOINTS", "checkpoint_hint"]


@dataclass(frozen=True)
class OfficialFile:
    """file: the file's usual name; project: who publishes it; holds: what is inside;
    smpl: it needs the SMPL body files (``--smpl-dir``); project_format: a project
    ``.safetensors`` checkpoint is also accepted."""

    file: str
    project: str
    holds: str
    smpl: bool = True
    project_format: bool = True


_SPIN = OfficialFile("model_checkpoint.pt", "SPIN (nkolot/SPIN, its fetch_data.sh)",
                     "a dict whose 'model' is SPIN's HMR state dict (331 keys)")
OFFICIAL_CHECKPOINTS: dict[str, OfficialFile] = {
    "hmr": _SPIN,
    "spin": _SPIN,
    "eft": OfficialFile("model_checkpoint.pt or an EFT-trained HMR checkpoint", "SPIN / EFT (facebookresearch/eft)",
                        "SPIN's HMR layout ('model', 331 keys)"),
    "pymaf": OfficialFile("PyMAF_model_checkpoint.pt", "PyMAF (HongwenZhang/PyMAF, data/pretrained_model)",
                          "a dict whose 'model' is PyMAF's state dict (441 keys); the SMPL folder also needs "
                          "GraphCMR's mesh_downsampling.npz and UV_data/UV_Processed.mat"),
    "cliff": OfficialFile("hr48-*.pt or res50-*.pt",
                          "CLIFF (huawei-noah/noah-research, CLIFF/)",
                          "a dict whose 'model' is CLIFF's state dict with the 'module.' prefix"),
    "meta-hmr": OfficialFile("a Meta-HMR checkpoint (HMR variants)", "Meta-HMR (fmx789/Meta-HMR)",
                             "'model' (main network) and 'model_aux' (auxiliary) in SPIN's HMR layout",
                             project_format=False),
    "meshpose": OfficialFile("a project MeshPose .safetensors (trained with training.meshpose)", "this project",
                             "MeshPose's official checkpoints are not public", smpl=False),
}


def checkpoint_hint(method: str) -> str:
    """One line: the file ``method`` takes and the flag that passes it ('' if none)."""
    f = OFFICIAL_CHECKPOINTS.get(method)
    if f is None:
        return ""
    smpl = " with --smpl-dir SMPL_FOLDER" if f.smpl else ""
    return f"--checkpoint {method}=PATH to {f.file} from {f.project}{smpl}"

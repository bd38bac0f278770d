"""Checks on Traces shared by the model tests."""
from __future__ import annotations

import torch


def body_at_step(body, step):
    """The body evaluated at a Trace step's parameters (betas, body_pose, global_orient,
    transl), batch of 1: camera-frame joints (1, 49, 3) and vertices (1, V, 3)."""
    with torch.no_grad():
        return body(betas=torch.as_tensor(step.params["betas"])[None],
                    body_pose=torch.as_tensor(step.params["body_pose"])[None],
                    global_orient=torch.as_tensor(step.params["global_orient"])[None],
                    transl=torch.as_tensor(step.params["transl"])[None])

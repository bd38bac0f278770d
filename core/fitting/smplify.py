"""SMPLify: fit the body to 2D keypoints on the 224 crop (SPIN's version and the original
multi-stage schedule), batched, recording every k-th step into a Trace.

SPIN's SMPLify (fact sheet ``spin_pymaf.md`` §2.1), :func:`spin_schedule`:

1. **camera stage**: Adam (lr 1e-2) on global orientation + camera translation, body pose
   and betas frozen; loss = squared 2D error of 4 torso joints + ``100² (t_z − t_z,init)²``.
   SPIN effectively uses the GT hips/shoulders (the in-place confidence quirk, see
   :func:`core.fitting.losses.camera_torso_mask`).
2. **body stage**: Adam on body pose, betas, global orientation, camera fixed; loss =
   ``Σ conf² ρ_σ=100(proj − target)`` over the 49 joints with OP Neck/RHip/LHip and GT hips
   ignored + ``4.78² · GMM(θ)`` + ``15.2² · angle prior`` + ``5² ‖β‖²``.

100 iterations per stage, f = 5000 px, principal point (112, 112). Start: a regressor's
output (:meth:`FitInit.from_rotmats`) or the body's mean pose (:meth:`FitInit.mean`, with
the translation estimated from the torso keypoints).

The original SMPLify schedule (Bogo et al. 2016, ``fit_3d.py``; the same lists are
SMPLify-X's defaults), :func:`smplify_schedule`: after the camera stage, 4 body stages with
decreasing prior weights — pose prior ``[404, 404, 57.4, 4.78]``, shape ``[100, 50, 10, 5]``,
angle prior ``0.317 × pose weight`` — all applied squared (they are residual weights in
SMPLify's least squares). SMPLify minimised each stage with Powell's dogleg; here each is a
run of Adam steps (the last stage the longest), and the body stages also refine the camera
translation as SMPLify-X does. From the mean pose, both facing directions are tried in the
camera stage and the better one is kept (SMPLify tries both for near-profile views; here
always, at the cost of one more camera stage).

During the iterations only the joints are evaluated (``body(..., vertex_ids=empty)``: the
~118 vertices SPIN's keypoints need); full meshes are computed only for recorded steps and
the result. With the open body the pose prior is the project's range-of-motion GMM plus
joint-limit hinges (:mod:`core.fitting.priors`); with SMPL and a ``gmm_08.pkl`` it is
SMPLify's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from core.geometry import (
    FOCAL_LENGTH,
    IMG_RES,
    axis_angle_to_rotmat,
    estimate_translation,
    rotmat_to_axis_angle,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from core.methods import ProgressFn
from core.trace import Step, Trace
from core.utils.fastpaths import fast_adam

from .keypoints import prepare_keypoints, to_spin49
from .losses import (
    SMPLIFY_IGNORED,
    TORSO_GT,
    TORSO_OP,
    camera_fitting_loss,
    camera_torso_mask,
    keypoint_pixel_error,
    project_crop,
    reprojection_terms,
)
from .priors import PosePrior, angle_prior, load_pose_prior, shape_prior

__all__ = [
    "Stage", "spin_schedule", "smplify_schedule", "FitInit", "RecordedStep", "SMPLifyResult",
    "run_smplify", "body_stage_losses", "estimate_initial_translation", "SMPLifyMethod", "SPINMethod",
    "SMPLIFY_POSE_WEIGHTS", "SMPLIFY_SHAPE_WEIGHTS", "SMPLIFY_ANGLE_FACTOR",
]

# Bogo et al. 2016 fit_3d.py / SMPLify-X defaults (weights applied squared).
SMPLIFY_POSE_WEIGHTS = (404.0, 404.0, 57.4, 4.78)
SMPLIFY_SHAPE_WEIGHTS = (100.0, 50.0, 10.0, 5.0)
SMPLIFY_ANGLE_FACTOR = 0.317
DEFAULT_JOINT_LIMIT_WEIGHT = 10.0      # applied squared, only when the prior has limits


# ----------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Stage:
    """One optimisation stage.

    kind: "camera" (global orientation + translation) or "body" (pose, betas, global
    orientation). name: label part ("camera", "body", "body-2" …). iters: Adam steps.
    Weights (applied squared; body stages only): pose_prior, angle_prior, shape_prior,
    joint_limits (None → :data:`DEFAULT_JOINT_LIMIT_WEIGHT` when the prior has limits).
    translation: body stage also optimises the camera translation (SMPLify-X does; SPIN
    and the original SMPLify keep the camera-stage translation).
    """

    kind: str
    name: str
    iters: int
    pose_prior: float = 4.78
    angle_prior: float = 15.2
    shape_prior: float = 5.0
    joint_limits: Optional[float] = None
    translation: bool = False

    def __post_init__(self):
        if self.kind not in ("camera", "body"):
            raise ValueError(f"Stage.kind must be 'camera' or 'body', got {self.kind!r}")
        if self.iters < 0:
            raise ValueError(f"Stage.iters must be ≥ 0, got {self.iters}")


def spin_schedule(num_iters: int = 100, camera_iters: Optional[int] = None,
                  translation: bool = False) -> list[Stage]:
    """SPIN's SMPLify: camera stage + one body stage, ``num_iters`` each (SPIN: 100).
    ``translation=True`` also refines the camera translation in the body stage (not SPIN)."""
    return [Stage("camera", "camera", num_iters if camera_iters is None else camera_iters),
            Stage("body", "body", num_iters, translation=translation)]


def smplify_schedule(final_iters: int = 200, stage_iters: Optional[int] = None,
                     camera_iters: Optional[int] = None, translation: bool = True) -> list[Stage]:
    """Original SMPLify: camera stage + 4 body stages with decreasing prior weights.

    Adam moves each parameter by about one learning rate per step, and the pose travels
    furthest in the last, least-regularised stage, so that stage gets ``final_iters`` and
    the camera stage and the three strongly-regularised stages ``stage_iters`` each
    (default ``final_iters // 6``). ``translation``: the body stages also refine the camera
    translation, as SMPLify-X does (the original SMPLify keeps the camera-stage one); from a
    mean-pose start the camera stage's translation is a torso-only compromise that the
    body stage could not otherwise correct (the pelvis projects where the translation puts
    it).
    """
    k = max(1, final_iters // 6) if stage_iters is None else stage_iters
    stages = [Stage("camera", "camera", k if camera_iters is None else camera_iters)]
    for i, (w, wb) in enumerate(zip(SMPLIFY_POSE_WEIGHTS, SMPLIFY_SHAPE_WEIGHTS)):
        stages.append(Stage("body", f"body-{i + 1}", final_iters if i == 3 else k, pose_prior=w,
                            angle_prior=SMPLIFY_ANGLE_FACTOR * w, shape_prior=wb, translation=translation))
    return stages


def describe_schedule(schedule: str, num_iters: Optional[int] = None) -> str:
    """What ``run_smplify(schedule=…, num_iters=…)`` runs, in words: each stage's length
    (``num_iters`` sets SPIN's two stages each, or the original schedule's last body stage,
    the others getting a sixth of it)."""
    if schedule == "spin":
        stages = spin_schedule(100 if num_iters is None else num_iters)
        head = "SPIN: camera stage, then one body stage (iterations set both)"
    elif schedule == "smplify":
        stages = smplify_schedule(200 if num_iters is None else num_iters)
        head = ("SMPLify: camera stage, then 4 body stages with decreasing priors "
                "(iterations set the last; the others run a sixth of it)")
    else:
        raise ValueError(f"schedule must be 'spin' or 'smplify', got {schedule!r}")
    parts = " · ".join(f"{st.name} {st.iters}" for st in stages)
    return f"{head}: {parts} — {sum(st.iters for st in stages)} iterations in all"


# ----------------------------------------------------------------------------- init
@dataclass
class FitInit:
    """Starting parameters (batched, axis-angle).

    global_orient (B, 3); body_pose (B, 69); betas (B, 10); transl (B, 3) camera
    translation or None (estimated from the keypoints); kind: where it came from.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    betas: torch.Tensor
    transl: Optional[torch.Tensor] = None
    kind: str = "given"

    @property
    def batch_size(self) -> int:
        return self.global_orient.shape[0]

    @classmethod
    def mean(cls, body, batch_size: int = 1) -> "FitInit":
        """The body's mean parameters (``body.mean_params``: 6D pose, betas), translation to
        be estimated."""
        from core.geometry import rot6d_to_rotmat

        mp = body.mean_params
        R = rot6d_to_rotmat(torch.as_tensor(np.asarray(mp["pose"], np.float32)).reshape(24, 6))
        aa = rotmat_to_axis_angle(R).reshape(1, 72).expand(batch_size, -1).clone()
        betas = torch.as_tensor(np.asarray(mp["shape"], np.float32)).reshape(1, -1)[:, :10]
        betas = betas.expand(batch_size, -1).clone()
        return cls(aa[:, :3], aa[:, 3:], betas, None, kind="mean")

    @classmethod
    def from_rotmats(cls, rotmats: torch.Tensor, betas: torch.Tensor, cam: Optional[torch.Tensor] = None,
                     transl: Optional[torch.Tensor] = None, focal: float = FOCAL_LENGTH,
                     img_res: int = IMG_RES, kind: str = "regressor") -> "FitInit":
        """From a regressor's output: rotmats (B, 24, 3, 3), betas (B, 10), and either the
        weak-perspective cam (B, 3) or a translation (B, 3). Non-finite axis-angles → 0
        (as SPIN does after its rotmat → axis-angle conversion)."""
        rotmats = torch.as_tensor(rotmats).detach().float()
        B = rotmats.shape[0]
        if rotmats.shape[1:] != (24, 3, 3):
            raise ValueError(f"FitInit.from_rotmats: expected rotmats (B, 24, 3, 3), got {tuple(rotmats.shape)}")
        aa = rotmat_to_axis_angle(rotmats).reshape(B, 72)
        aa = torch.where(torch.isfinite(aa), aa, torch.zeros_like(aa))
        if transl is None and cam is not None:
            transl = weak_perspective_to_translation(torch.as_tensor(cam).detach().float(), focal, img_res)
        if transl is not None:
            transl = torch.as_tensor(transl).detach().float().reshape(B, 3)
        return cls(aa[:, :3].clone(), aa[:, 3:].clone(), torch.as_tensor(betas).detach().float().reshape(B, -1),
                   transl, kind=kind)

    def expand(self, batch_size: int) -> "FitInit":
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"FitInit has batch {self.batch_size}, keypoints have {batch_size}")
        ex = lambda t: None if t is None else t.expand(batch_size, *t.shape[1:]).clone()  # noqa: E731
        return FitInit(ex(self.global_orient), ex(self.body_pose), ex(self.betas), ex(self.transl), self.kind)


EVALUATIONS = ("joints", "subset", "full")
# SMPLify's camera-stage joints: SPIN's trainer (GT torso, OpenPose hips zeroed) or a direct call (OpenPose torso first)
CAMERA_TORSO = {"trainer": True, "direct": False}


def _joints(body, betas, body_pose, global_orient, evaluation: str = "joints"):
    """Evaluate the body for its keypoints. Returns BodyOutput.

    evaluation: "joints" — :meth:`BodyModel.joints_only` (the fast path, no vertices);
    "subset" — ``body(vertex_ids=empty)``, the reference it equals; "full" — the whole mesh."""
    if evaluation == "joints":
        return body.joints_only()(betas, body_pose, global_orient)
    if evaluation == "full":
        return body(betas=betas, body_pose=body_pose, global_orient=global_orient)
    if evaluation != "subset":
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    empty = torch.zeros(0, dtype=torch.long, device=betas.device)
    return body(betas=betas, body_pose=body_pose, global_orient=global_orient, vertex_ids=empty,
                return_vertices=False)


def estimate_initial_translation(body, keypoints: torch.Tensor, init: FitInit, focal: float = FOCAL_LENGTH,
                                 img_res: int = IMG_RES) -> tuple[torch.Tensor, list[str]]:
    """Camera translation for a start without one: SPIN's least-squares
    ``estimate_translation`` on the visible torso keypoints (GT and OpenPose hips and
    shoulders), on all visible keypoints when fewer than 2 torso ones are visible, else the
    body's mean weak-perspective camera. Returns (B, 3) and per-sample notes."""
    B = keypoints.shape[0]
    with torch.no_grad():
        out = _joints(body, init.betas, init.body_pose, init.global_orient)
    conf = keypoints[..., 2]
    torso = torch.zeros_like(conf)
    torso[:, list(TORSO_GT) + list(TORSO_OP)] = 1.0
    n_torso = ((conf > 0) & (torso > 0)).sum(1)
    use = torch.where((n_torso >= 2)[:, None], conf * torso, conf)
    cam = torch.as_tensor(np.asarray(body.mean_params["cam"], np.float32)).reshape(1, 3).expand(B, 3)
    fallback = weak_perspective_to_translation(cam, focal, img_res).to(keypoints.dtype)
    kp = torch.cat([keypoints[..., :2], use[..., None]], -1)
    t = estimate_translation(out.joints.to(keypoints.dtype), kp, focal, img_res, fallback=fallback)
    notes = [[] for _ in range(B)]
    bad = ~torch.isfinite(t).all(1) | (t[:, 2] < 0.1 * fallback[:, 2]) | ((use > 0).sum(1) < 2)
    for b in range(B):
        if bool(bad[b]):
            notes[b].append("camera translation could not be estimated from the keypoints; used the mean camera")
    t = torch.where(bad[:, None], fallback, t)
    return t, notes


# ----------------------------------------------------------------------------- losses
def body_stage_losses(body, keypoints: torch.Tensor, global_orient: torch.Tensor, body_pose: torch.Tensor,
                      betas: torch.Tensor, transl: torch.Tensor, prior: PosePrior, stage: Stage,
                      focal: float = FOCAL_LENGTH, img_res: int = IMG_RES, sigma: float = 100.0,
                      evaluation: str = "joints", ignored: Sequence[int] = SMPLIFY_IGNORED):
    """SMPLify body-stage loss terms per sample.

    Args:
        keypoints: (B, 49, 3) crop pixels. global_orient (B, 3), body_pose (B, 69)
        axis-angle; betas (B, 10); transl (B, 3). evaluation: "joints" (fast, default),
        "subset" (the reference path) or "full" (all vertices; same loss, slower) — see
        :func:`_joints`.
    Returns:
        (terms: dict name → (B,) incl. "total", per_joint (B, 49) data term, joints2d
        (B, 49, 2), body output).
    """
    out = _joints(body, betas, body_pose, global_orient, evaluation)
    j2d = project_crop(out.joints, transl, focal, img_res)
    per_joint = reprojection_terms(j2d, keypoints, sigma, ignored)
    terms = {"reprojection": per_joint.sum(-1),
             "pose_prior": stage.pose_prior ** 2 * prior.gmm(body_pose),
             "angle_prior": stage.angle_prior ** 2 * angle_prior(body_pose),
             "shape_prior": stage.shape_prior ** 2 * shape_prior(betas)}
    if prior.limits is not None:
        w = DEFAULT_JOINT_LIMIT_WEIGHT if stage.joint_limits is None else stage.joint_limits
        if w > 0:
            terms["joint_limits"] = w ** 2 * prior.limits(body_pose)
    terms["total"] = sum(terms.values())
    return terms, per_joint, j2d, out


# ----------------------------------------------------------------------------- results
@dataclass
class RecordedStep:
    """One recorded iteration, batched NumPy arrays: rotmats (B,24,3,3), betas (B,10),
    transl (B,3), joints2d (B,49,2), vertices (B,V,3) camera frame or None, losses name →
    (B,), stage name, iteration k of iters."""

    label: str
    stage: str
    iteration: int
    iters: int
    rotmats: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    joints2d: np.ndarray
    vertices: Optional[np.ndarray]
    losses: dict

    def select(self, rows: np.ndarray) -> "RecordedStep":
        sel = lambda a: None if a is None else a[rows]  # noqa: E731
        return RecordedStep(self.label, self.stage, self.iteration, self.iters, sel(self.rotmats),
                            sel(self.betas), sel(self.transl), sel(self.joints2d), sel(self.vertices),
                            {k: v[rows] for k, v in self.losses.items()})


@dataclass
class SMPLifyResult:
    """Fitted parameters and meshes (batch first, float32 tensors on the fitting device).

    global_orient (B,3) and body_pose (B,69) axis-angle; rotmats (B,24,3,3); betas (B,10);
    transl (B,3) camera translation; cam (B,3) weak-perspective (s, tx, ty); vertices
    (B,V,3) and joints3d (B,49,3) in the camera frame; joints2d (B,49,2) crop pixels;
    reprojection_loss (B,49) SPIN's per-joint score (conf² ρ, ignored joints 0) and
    fit_score (B,) its mean over the 49 joints (SPIN keeps a fit if this improves);
    keypoints_2d_px (B,) mean pixel error over visible joints; losses name → (B,) final
    body-stage terms; fitted (B,) False where the sample was not fitted (too few
    keypoints, or the optimisation diverged) and the initialisation was returned;
    warnings per sample; keypoints (B,49,3) the cleaned targets; steps recorded
    iterations; config what was run.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    rotmats: torch.Tensor
    vertices: torch.Tensor
    joints3d: torch.Tensor
    joints2d: torch.Tensor
    reprojection_loss: torch.Tensor
    fit_score: torch.Tensor
    keypoints_2d_px: torch.Tensor
    losses: dict
    fitted: torch.Tensor
    warnings: list
    keypoints: torch.Tensor
    steps: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def cam(self) -> torch.Tensor:
        f = self.config.get("focal_length", FOCAL_LENGTH)
        return translation_to_weak_perspective(self.transl, f, self.config.get("img_res", IMG_RES))

    def to_trace(self, index: int = 0, crop: Optional[np.ndarray] = None, faces=None, body_name: str = "open",
                 camera_extra: Optional[dict] = None, meta: Optional[dict] = None,
                 method: str = "smplify") -> Trace:
        """The recorded iterations of sample ``index`` as a :class:`~core.trace.Trace`
        (one step per recorded iteration; a final step with the result if the last
        iteration was not recorded)."""
        cfg = self.config
        steps = []
        kp = self.keypoints[index].detach().cpu().numpy()
        for rec in self.steps:
            steps.append(_trace_step(rec.label, rec.rotmats[index], rec.betas[index], rec.transl[index],
                                     rec.joints2d[index], None if rec.vertices is None else rec.vertices[index],
                                     {k: float(v[index]) for k, v in rec.losses.items()}, kp, cfg,
                                     {"stage": rec.stage, "iteration": rec.iteration, "iters": rec.iters}))
        if not steps or steps[-1].vertices is None:
            steps.append(_trace_step("SMPLify result", self.rotmats[index].cpu().numpy(),
                                     self.betas[index].cpu().numpy(), self.transl[index].cpu().numpy(),
                                     self.joints2d[index].cpu().numpy(), self.vertices[index].cpu().numpy(),
                                     {k: float(v[index]) for k, v in self.losses.items()}, kp, cfg,
                                     {"stage": "result"}))
        camera = {"focal": np.float32(cfg.get("focal_length", FOCAL_LENGTH)),
                  "center": np.full(2, cfg.get("img_res", IMG_RES) / 2.0, np.float32),
                  "img_res": np.asarray(cfg.get("img_res", IMG_RES))}
        camera.update(camera_extra or {})
        tmeta = {k: v for k, v in cfg.items() if isinstance(v, (str, int, float, bool))}
        tmeta.update({"fitted": bool(self.fitted[index]), "fit_score": float(self.fit_score[index]),
                      "keypoints_2d_px": float(self.keypoints_2d_px[index])})
        if self.warnings[index]:
            tmeta["warning"] = "; ".join(self.warnings[index])
        tmeta.update(meta or {})
        return Trace(method, crop=crop, camera=camera, steps=steps, body=body_name,
                     target_keypoints=kp.astype(np.float32), faces=faces, meta=tmeta)


def _trace_step(label, rotmats, betas, transl, j2d, vertices, losses, kp, cfg, meta) -> Step:
    rotmats = np.asarray(rotmats, np.float32)
    transl = np.asarray(transl, np.float32)
    f, res = cfg.get("focal_length", FOCAL_LENGTH), cfg.get("img_res", IMG_RES)
    cam = translation_to_weak_perspective(torch.as_tensor(transl), f, res).numpy()
    losses = dict(losses)
    losses["keypoints_2d_px"] = keypoint_pixel_error(np.asarray(j2d), kp)
    return Step(label, params={"global_orient": rotmats[:1], "body_pose": rotmats[1:], "betas": betas,
                               "transl": transl, "cam": cam},
                vertices=vertices, joints2d=j2d, losses=losses, meta=meta)


# ----------------------------------------------------------------------------- fitting
class _Recorder:
    def __init__(self, body, every: Optional[int], with_vertices: bool):
        self.body, self.every, self.with_vertices = body, every, with_vertices
        self.steps: list[RecordedStep] = []

    def wants(self, k: int, n: int) -> bool:
        return self.every is not None and (k % self.every == 0 or k == n)

    @torch.no_grad()
    def record(self, label, stage, k, n, go, bp, betas, transl, j2d, losses):
        rot = torch.cat([axis_angle_to_rotmat(go[:, None]), axis_angle_to_rotmat(bp.reshape(-1, 23, 3))], 1)
        verts = None
        if self.with_vertices:
            verts = (self.body(betas=betas, body_pose=rot[:, 1:], global_orient=rot[:, :1]).vertices
                     + transl[:, None]).cpu().numpy()
        copy = lambda t: t.detach().cpu().numpy().copy()   # noqa: E731  (never alias live parameters)
        self.steps.append(RecordedStep(label, stage, k, n, copy(rot), copy(betas), copy(transl), copy(j2d), verts,
                                       {name: copy(v) for name, v in losses.items()}))


def _run_camera_stage(body, kp, go, bp, betas, transl, stage, cfg, active, recorder, progress, done, total):
    go = go.clone().requires_grad_(True)
    transl_init = transl.detach().clone()
    transl = transl.clone().requires_grad_(True)
    mask = camera_torso_mask(kp[..., 2], use_gt_first=cfg["camera_gt_torso_first"])
    opt = fast_adam([go, transl], lr=cfg["step_size"], betas=(0.9, 0.999))
    act = active.to(kp.dtype)
    n = stage.iters
    for k in range(n + 1):
        out = _joints(body, betas, bp, go, cfg["evaluation"])
        j2d = project_crop(out.joints, transl, cfg["focal_length"], cfg["img_res"])
        terms = camera_fitting_loss(j2d, kp, mask, transl, transl_init, cfg["depth_loss_weight"])
        terms = {name: v * act for name, v in terms.items()}
        if recorder.wants(k, n) and (k > 0 or not recorder.steps):
            label = "SMPLify init" if k == 0 else f"SMPLify {stage.name} {k}/{n}"
            recorder.record(label, stage.name, k, n, go.detach(), bp, betas, transl.detach(), j2d, terms)
        if k == n:
            break
        opt.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        prev = (go.detach().clone(), transl.detach().clone())
        opt.step()
        _guard([go, transl], prev, active)
        done[0] += 1
        if progress is not None and (k % 10 == 0):
            progress(done[0] / total, f"SMPLify {stage.name} {k + 1}/{n}")
    return go.detach(), transl.detach(), {name: v.detach() for name, v in terms.items()}


def _run_body_stage(body, kp, go, bp, betas, transl, stage, cfg, prior, active, recorder, progress, done, total):
    go = go.clone().requires_grad_(True)
    bp = bp.clone().requires_grad_(True)
    betas = betas.clone().requires_grad_(True)
    free = [bp, betas, go]
    if stage.translation:
        transl = transl.clone().requires_grad_(True)
        free.append(transl)
    opt = fast_adam(free, lr=cfg["step_size"], betas=(0.9, 0.999))
    act = active.to(kp.dtype)
    n = stage.iters
    terms = per_joint = None
    for k in range(n + 1):
        terms, per_joint, j2d, _ = body_stage_losses(body, kp, go, bp, betas, transl, prior, stage,
                                                     cfg["focal_length"], cfg["img_res"], cfg["sigma"],
                                                     cfg["evaluation"])
        terms = {name: v * act for name, v in terms.items()}
        if recorder.wants(k, n) and (k > 0 or not recorder.steps):
            label = "SMPLify init" if k == 0 else f"SMPLify {stage.name} {k}/{n}"
            recorder.record(label, stage.name, k, n, go.detach(), bp.detach(), betas.detach(), transl.detach(),
                            j2d, terms)
        if k == n:
            break
        opt.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        prev = tuple(p.detach().clone() for p in free)
        opt.step()
        _guard(free, prev, active)
        done[0] += 1
        if progress is not None and (k % 10 == 0):
            progress(done[0] / total, f"SMPLify {stage.name} {k + 1}/{n}")
    return go.detach(), bp.detach(), betas.detach(), transl.detach(), {name: v.detach() for name, v in terms.items()}


@torch.no_grad()
def _guard(params: list[torch.Tensor], prev: tuple, active: torch.Tensor) -> None:
    """Undo an update that made a sample's parameters non-finite, and stop that sample."""
    bad = torch.zeros_like(active)
    for p in params:
        bad |= ~torch.isfinite(p.reshape(p.shape[0], -1)).all(1)
    if bool(bad.any()):
        for p, q in zip(params, prev):
            p[bad] = q[bad]
        active &= ~bad


def run_smplify(body, keypoints, init: Optional[FitInit] = None, prior: Optional[PosePrior] = None,
                schedule: str | Sequence[Stage] = "spin", num_iters: Optional[int] = None,
                body_translation: Optional[bool] = None, step_size: float = 1e-2,
                focal_length: float = FOCAL_LENGTH, img_res: int = IMG_RES, sigma: float = 100.0,
                depth_loss_weight: float = 100.0, try_flipped_orientation: Optional[bool] = None,
                camera_gt_torso_first: bool = True, record_every: Optional[int] = None,
                record_vertices: bool = True, min_visible: int = 2,
                progress: Optional[ProgressFn] = None, evaluation: str = "joints") -> SMPLifyResult:
    """Fit the body to 2D keypoints on the crop.

    Args:
        body: a ``core.body`` BodyModel.
        keypoints: (B, 49, 3) or (49, 3) SPIN-49 (x, y, conf) in crop pixels; other layouts
            via :func:`core.fitting.keypoints.to_spin49`.
        init: start (:class:`FitInit`), batch B or 1; None = the body's mean pose.
        prior: pose prior; None = :func:`core.fitting.priors.load_pose_prior` for the body.
        schedule: "spin" (camera + body stage, ``num_iters`` each, default 100), "smplify"
            (camera + 4 body stages with decreasing priors, the last ``num_iters`` long,
            default 200, see :func:`smplify_schedule`), or a list of :class:`Stage`.
        body_translation: body stages also refine the camera translation (default: False
            for "spin" as in SPIN, True for "smplify" as in SMPLify-X; ignored for a list).
        step_size: Adam learning rate (1e-2).
        focal_length, img_res: crop camera (5000 px, 224).
        sigma: Geman–McClure scale (px). depth_loss_weight: camera-stage depth anchor.
        try_flipped_orientation: also start the camera stage facing away and keep the better
            fit (default: True for a mean-pose start).
        camera_gt_torso_first: SPIN's effective camera-stage joint choice (see
            :func:`core.fitting.losses.camera_torso_mask`).
        record_every: record every k-th iteration of every stage (and each stage's last);
            None = record nothing (fastest).
        record_vertices: compute full meshes for recorded steps.
        min_visible: samples with fewer distinct visible keypoints are not fitted.
        progress: ``progress(fraction, message)``.
        evaluation: how the loops evaluate the body — "joints" (the fast joints-only path,
            default), "subset" (the reference it equals, kept for benchmarks and checks) or
            "full" (every vertex); see :func:`_joints`.
    Returns:
        :class:`SMPLifyResult`. Samples that could not be fitted get the initialisation
        back, ``fitted=False`` and a warning (never NaN).
    """
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    ref = body.v_template
    prepared = prepare_keypoints(keypoints, img_res=img_res, min_visible=min_visible,
                                 dtype=ref.dtype, device=ref.device)
    kp = prepared.keypoints
    B = kp.shape[0]
    warn = [list(w) for w in prepared.warnings]
    if prior is None:
        prior = load_pose_prior(body.name)
    prior.to(ref.device)
    if isinstance(schedule, str):
        if schedule == "spin":
            stages = spin_schedule(100 if num_iters is None else num_iters,
                                   translation=bool(body_translation))
        elif schedule == "smplify":
            stages = smplify_schedule(200 if num_iters is None else num_iters,
                                      translation=body_translation is not False)
        else:
            raise ValueError(f"schedule must be 'spin', 'smplify' or a list of Stage, got {schedule!r}")
        schedule_name = schedule
    else:
        stages = list(schedule)
        schedule_name = "custom"
    if init is None:
        init = FitInit.mean(body, B)
        if try_flipped_orientation is None:
            try_flipped_orientation = True
    init = init.expand(B)
    go0 = init.global_orient.to(ref.device, ref.dtype)
    bp0 = init.body_pose.to(ref.device, ref.dtype)
    betas0 = init.betas.to(ref.device, ref.dtype)
    if betas0.shape[1] != body.num_betas:
        betas0 = torch.nn.functional.pad(betas0, (0, body.num_betas - betas0.shape[1]))[:, :body.num_betas]
    init = FitInit(go0, bp0, betas0, init.transl, init.kind)
    if init.transl is None:
        t0, notes = estimate_initial_translation(body, kp, init, focal_length, img_res)
        for b in range(B):
            warn[b].extend(notes[b] if prepared.fittable[b] else [])
    else:
        t0 = init.transl.to(ref.device, ref.dtype)
    cfg = {"schedule": schedule_name, "step_size": step_size,
           "focal_length": float(focal_length), "img_res": int(img_res), "sigma": float(sigma),
           "depth_loss_weight": float(depth_loss_weight), "camera_gt_torso_first": camera_gt_torso_first,
           "init": init.kind, "prior": prior.source, "prior_is_open": prior.is_open,
           "try_flipped_orientation": bool(try_flipped_orientation), "evaluation": evaluation,
           "stages": ",".join(f"{s.name}:{s.iters}{'+transl' if s.translation else ''}" for s in stages)}
    active = prepared.fittable.clone()
    total = max(1, sum(s.iters for s in stages) + (stages[0].iters if try_flipped_orientation else 0))
    done = [0]
    recorder = _Recorder(body, record_every, record_vertices)
    go, bp, betas, transl = go0, bp0, betas0, t0
    terms: dict = {}
    for si, stage in enumerate(stages):
        if stage.kind == "camera":
            if try_flipped_orientation and si == 0:
                go, transl, terms = _camera_both_orientations(body, kp, init, transl, stage, cfg, active,
                                                              recorder, progress, done, total, warn)
            else:
                go, transl, terms = _run_camera_stage(body, kp, go, bp, betas, transl, stage, cfg, active,
                                                      recorder, progress, done, total)
        else:
            go, bp, betas, transl, terms = _run_body_stage(body, kp, go, bp, betas, transl, stage, cfg, prior,
                                                           active, recorder, progress, done, total)
    # final evaluation: full mesh
    last_body = next((s for s in reversed(stages) if s.kind == "body"), Stage("body", "body", 0))
    with torch.no_grad():
        keep = active[:, None]
        go = torch.where(keep, go, go0)
        bp = torch.where(keep, bp, bp0)
        betas = torch.where(keep, betas, betas0)
        transl = torch.where(keep, transl, t0)
        final_terms, per_joint, j2d, out = body_stage_losses(body, kp, go, bp, betas, transl, prior, last_body,
                                                             focal_length, img_res, sigma, evaluation="full")
        bad = ~(torch.isfinite(out.vertices).all(-1).all(-1) & torch.isfinite(j2d).all(-1).all(-1))
        if bool(bad.any()):   # cannot happen with finite inits; keep the promise of no NaN meshes
            raise FloatingPointError(f"SMPLify produced non-finite meshes for samples "
                                     f"{bad.nonzero().flatten().tolist()} even from the initialisation")
    for b in range(B):
        if prepared.fittable[b] and not active[b]:
            warn[b].append("the optimisation diverged (non-finite parameters); returned the initialisation")
    vis = kp[..., 2] > 0
    dist = (j2d - kp[..., :2]).norm(dim=-1)
    px = torch.where(vis.any(1), (dist * vis).sum(1) / vis.sum(1).clamp(min=1),
                     torch.full_like(dist[:, 0], float("nan")))
    rot = out.rotmats
    return SMPLifyResult(
        global_orient=go, body_pose=bp, betas=betas, transl=transl, rotmats=rot,
        vertices=out.vertices + transl[:, None], joints3d=out.joints + transl[:, None], joints2d=j2d,
        reprojection_loss=per_joint, fit_score=per_joint.mean(-1), keypoints_2d_px=px,
        losses=final_terms, fitted=active, warnings=warn, keypoints=kp, steps=recorder.steps, config=cfg)


def _camera_both_orientations(body, kp, init, transl, stage, cfg, active, recorder, progress, done, total, warn):
    """Camera stage from the given orientation and from its 180° turn; keep the better."""
    B = kp.shape[0]
    R0 = axis_angle_to_rotmat(init.global_orient)
    turn = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=R0.dtype, device=R0.device))
    go_flip = rotmat_to_axis_angle(R0 @ turn)
    kp2 = torch.cat([kp, kp])
    active2 = torch.cat([active, active])
    sub = _Recorder(recorder.body, recorder.every, recorder.with_vertices)
    go, tr, terms = _run_camera_stage(body, kp2, torch.cat([init.global_orient, go_flip]),
                                      torch.cat([init.body_pose, init.body_pose]),
                                      torch.cat([init.betas, init.betas]), torch.cat([transl, transl]),
                                      stage, cfg, active2, sub, progress, done, total)
    loss = terms["camera_reprojection"]
    flipped = loss[B:] < loss[:B]
    rows = torch.arange(B) + B * flipped.long().cpu()
    active &= active2[rows.to(active2.device)]
    for b in range(B):
        if flipped[b]:
            warn[b].append("SMPLify turned the start around: the person faces away from the camera")
    recorder.steps.extend(s.select(rows.numpy()) for s in sub.steps)
    return go[rows.to(go.device)], tr[rows.to(tr.device)], {k: v[rows.to(v.device)] for k, v in terms.items()}


# ----------------------------------------------------------------------------- method
class SMPLifyMethod:
    """``core.methods`` entry "smplify": fit the body to the crop's keypoints.

    Args:
        body: "open" (default) or "smpl" (needs ``smpl_dir``), or a BodyModel.
        smpl_dir: SPIN/PyMAF-style data folder (SMPL files, ``gmm_08.pkl``).
        schedule: "spin" or "smplify" (see :func:`run_smplify`); default "smplify" from the
            mean pose, "spin" from a regressor.
        num_iters: see :func:`run_smplify` (default 100 for "spin", 200 for "smplify").
        init: "mean" or "regressor" (run ``regressor`` on the crop first, SPIN-style).
        regressor: a ``core.models`` HMR-like model, or a project checkpoint path.
        record_every: record every k-th iteration in the Trace.
        camera_torso: the camera stage's joints — "trainer" (default: the 4 GT torso joints,
            as SPIN's trainer runs it, having zeroed the OpenPose hips) or "direct" (the 4
            OpenPose torso joints when all are visible, as a direct call of SPIN's SMPLify
            does); see :func:`core.fitting.losses.camera_torso_mask`.
    """

    def __init__(self, body="open", smpl_dir=None, schedule: Optional[str] = None, num_iters: Optional[int] = None,
                 init: str = "mean", regressor=None, record_every: int = 5, step_size: float = 1e-2,
                 gmm_path=None, camera_torso: str = "trainer"):
        from core.body import resolve_body

        if init not in ("mean", "regressor"):
            raise ValueError(f"init must be 'mean' or 'regressor', got {init!r}")
        if camera_torso not in CAMERA_TORSO:
            raise ValueError(f"camera_torso must be one of {sorted(CAMERA_TORSO)}, got {camera_torso!r}")
        self.camera_torso = camera_torso
        self.body = resolve_body(body, smpl_dir)
        self.prior = load_pose_prior(self.body.name, smpl_dir=smpl_dir, gmm_path=gmm_path)
        if schedule is None:
            schedule = "smplify" if init == "mean" else "spin"
        self.schedule, self.num_iters, self.step_size = schedule, num_iters, step_size
        self.init, self.record_every = init, record_every
        if init == "regressor" and regressor is None:
            from core.models.shipped import load_method_weights

            regressor = load_method_weights("hmr", self.body)
            if regressor is None:
                raise ValueError("init='regressor' needs regressor= a core.models HMR model or a checkpoint path "
                                 "(no shipped HMR weights for this body: they exist for the open body with the "
                                 "detect extra installed)")
        if isinstance(regressor, str):
            from core.models import load_project_checkpoint
            regressor = load_project_checkpoint(regressor, body=self.body)
        self.regressor = regressor

    def run(self, inputs, progress: Optional[ProgressFn] = None) -> Trace:
        if inputs.keypoints is None:
            raise ValueError("SMPLify needs 2D keypoints (MethodInputs.keypoints, SPIN-49 in crop pixels); "
                             "detect them with core.detect.detect_people")
        kp = to_spin49(inputs.keypoints)
        meta = {}
        init = None
        if self.init == "regressor":
            from .tto import as_network_input, regressor_forward
            model = self.regressor
            was = model.training
            model.eval()
            with torch.no_grad():
                state = regressor_forward(model, as_network_input(inputs.crop, model))
            model.train(was)
            init = FitInit.from_rotmats(state.rotmat, state.betas, cam=state.cam)
            meta["weights_trained"] = bool(getattr(model, "weights_trained", False))
            shipped = getattr(model, "shipped", None)
            if shipped is not None:
                meta["weights"] = f"initialised by the HMR regressor {shipped.summary}"
            if not meta["weights_trained"]:
                meta["init_warning"] = "initialised from an untrained regressor"
        res = run_smplify(self.body, kp, init=init, prior=self.prior, schedule=self.schedule,
                          num_iters=self.num_iters, step_size=self.step_size, record_every=self.record_every,
                          progress=progress, camera_gt_torso_first=CAMERA_TORSO[self.camera_torso])
        camera_extra = {"bbox_center": np.asarray(inputs.center, np.float32), "bbox_scale": np.float32(inputs.scale),
                        "img_size": np.asarray(inputs.image.shape[:2], np.float32)}
        return res.to_trace(0, crop=inputs.crop, faces=self.body.faces, body_name=self.body.name,
                            camera_extra=camera_extra, meta=meta)


class SPINMethod(SMPLifyMethod):
    """``core.methods`` entry "spin": SMPLify initialised by the HMR regressor — ``regressor=``,
    else ``checkpoint`` (SPIN's ``model_checkpoint.pt`` with ``smpl_dir``, or a project file),
    else the shipped weights on the open body, else an untrained HMR (the Trace says so) —
    with SPIN's two-stage schedule."""

    def __init__(self, body="open", smpl_dir=None, checkpoint=None, num_iters: Optional[int] = None, regressor=None,
                 record_every: int = 5, step_size: float = 1e-2, gmm_path=None, camera_torso: str = "trainer"):
        from .tto import build_regressor

        if regressor is None:  # the checkpoint, else the shipped weights, else an untrained HMR (labelled)
            regressor = build_regressor(None, checkpoint, body, smpl_dir, "hmr", method="spin")
        super().__init__(body=regressor.body, smpl_dir=smpl_dir, schedule="spin", num_iters=num_iters, init="regressor",
                         regressor=regressor, record_every=record_every, step_size=step_size, gmm_path=gmm_path,
                         camera_torso=camera_torso)


def _register() -> None:
    from core.methods import register_method

    register_method("smplify", builder=SMPLifyMethod, family="optimisation", needs=("keypoints",), overwrite=True,
                    description="SMPLify (SPIN's camera + body stages, or the original 4-stage schedule): "
                                "fit the body to 2D keypoints with pose/shape priors")
    register_method("spin", builder=SPINMethod, family="spin", needs=("keypoints",), overwrite=True,
                    description="SPIN at test time: the HMR regressor's prediction, refined by SMPLify's two "
                                "stages from it (the fit SPIN's training loop runs)")


_register()

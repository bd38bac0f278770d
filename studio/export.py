"""Files out of a trace: meshes (.glb with vertex colours, .obj), a step's parameters (.npz).

Meshes are written in a **viewer frame**: the camera frame (x right, y down, z forward)
turned 180° about x, so y points up and the person faces +z (glTF's and most viewers'
convention; ``gr.Model3D`` is Y-up), and centred on the mesh's bounding-box centre. The
``.npz`` of parameters keeps the exact camera-frame vertices of the trace.

GLB scenes can also carry the photo as a textured quad behind the person (at the depth of the
mesh's back, scaled so that it lines up with the mesh seen from the camera).
"""
from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np

from core.trace import Step, Trace

__all__ = ["to_viewer_frame", "mesh_glb", "mesh_obj", "step_params_npz", "image_plane", "scene_glb",
           "ImagePlane"]

_FLIP = np.array([1.0, -1.0, -1.0])


def to_viewer_frame(points: np.ndarray, center: Optional[np.ndarray] = None) -> np.ndarray:
    """Camera frame → viewer frame (y up, facing +z), minus ``center`` (camera frame).

    Args:
        points: (N, 3) camera-frame points.
        center: (3,) camera-frame point that becomes the origin; None → no shift.
    Returns:
        (N, 3) float32.
    """
    p = np.asarray(points, dtype=np.float64)
    if center is not None:
        p = p - np.asarray(center, dtype=np.float64)
    return (p * _FLIP).astype(np.float32)


def _rgba(colors: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    if colors is None:
        return None
    c = np.asarray(colors, dtype=np.float64)
    if c.shape != (n, 3) and c.shape != (n, 4):
        raise ValueError(f"vertex colours must be ({n}, 3|4), got {c.shape}")
    if c.max(initial=0) <= 1.0:
        c = c * 255.0
    c = np.clip(np.round(c), 0, 255).astype(np.uint8)
    if c.shape[1] == 3:
        c = np.concatenate([c, np.full((n, 1), 255, np.uint8)], axis=1)
    return c


def _bbox_center(v: np.ndarray) -> np.ndarray:
    return (v.min(axis=0) + v.max(axis=0)) / 2.0


class ImagePlane:
    """A photo as a textured rectangle in the camera frame.

    Attributes:
        corners: (4, 3) camera-frame corners (top-left, top-right, bottom-right, bottom-left).
        image: (H, W, 3) uint8 texture.
    """

    def __init__(self, corners: np.ndarray, image: np.ndarray):
        self.corners = np.asarray(corners, dtype=np.float64)
        self.image = np.asarray(image, dtype=np.uint8)


def image_plane(image: np.ndarray, K: np.ndarray, depth: float) -> ImagePlane:
    """The quad at camera depth ``depth`` that the camera ``K`` sees exactly as ``image``.

    Args:
        image: (H, W, 3) uint8 (the crop K refers to).
        K: (3, 3) intrinsics of that image.
        depth: Z of the plane (> 0).
    """
    h, w = image.shape[:2]
    px = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    xy = (px - K[:2, 2]) / np.diag(K)[:2] * depth
    corners = np.concatenate([xy, np.full((4, 1), depth)], axis=1)
    return ImagePlane(corners, image)


def _plane_mesh(plane: ImagePlane, center: np.ndarray):
    import trimesh
    from PIL import Image

    verts = to_viewer_frame(plane.corners, center)
    faces = np.array([[0, 3, 2], [0, 2, 1]])  # faces +z (towards the viewer) after the flip
    uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(plane.image),
                                                   metallicFactor=0.0, roughnessFactor=1.0,
                                                   doubleSided=True)
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(verts, faces, visual=visual, process=False)


def scene_glb(meshes: Sequence[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]],
              plane: Optional[ImagePlane] = None, center: Optional[np.ndarray] = None,
              names: Optional[Sequence[str]] = None) -> bytes:
    """A binary glTF scene of several camera-frame meshes (and optionally a photo plane).

    Args:
        meshes: (vertices (V, 3), faces (F, 3), vertex colours (V, 3|4) in [0, 1] or 0–255
            or None) per mesh, camera frame.
        plane: optional photo quad.
        center: camera-frame point that becomes the origin; None → the first mesh's
            bounding-box centre.
        names: node names.
    Returns:
        the ``.glb`` bytes.
    """
    import trimesh

    if not meshes:
        raise ValueError("scene_glb: no meshes given")
    if center is None:
        center = _bbox_center(np.asarray(meshes[0][0], np.float64))
    scene = trimesh.Scene()
    for i, (v, f, c) in enumerate(meshes):
        v = np.asarray(v)
        if not np.isfinite(v).all():
            raise ValueError(f"mesh {i} has NaN/inf vertices; cannot export it")
        mesh = trimesh.Trimesh(to_viewer_frame(v, center), np.asarray(f, np.int64),
                               vertex_colors=_rgba(c, len(v)), process=False)
        scene.add_geometry(mesh, node_name=(names[i] if names else f"mesh_{i}"),
                           geom_name=(names[i] if names else f"mesh_{i}"))
    if plane is not None:
        scene.add_geometry(_plane_mesh(plane, center), node_name="photo", geom_name="photo")
    return scene.export(file_type="glb")


def mesh_glb(vertices: np.ndarray, faces: np.ndarray, vertex_colors: Optional[np.ndarray] = None,
             plane: Optional[ImagePlane] = None) -> bytes:
    """One camera-frame mesh as ``.glb`` bytes (viewer frame, centred; see module doc)."""
    return scene_glb([(vertices, faces, vertex_colors)], plane=plane)


def mesh_obj(vertices: np.ndarray, faces: np.ndarray, vertex_colors: Optional[np.ndarray] = None,
             comment: str = "") -> str:
    """Wavefront OBJ text (``v x y z [r g b]`` with colours in [0, 1], 1-based faces), in the
    viewer frame centred on the mesh."""
    v = to_viewer_frame(vertices, _bbox_center(np.asarray(vertices, np.float64)))
    buf = io.StringIO()
    buf.write("# HMR Studio mesh export. Frame: y up, facing +z (camera frame turned 180 deg about x), "
              "centred on the mesh.\n")
    for line in comment.splitlines():
        buf.write(f"# {line}\n")
    if vertex_colors is not None:
        c = _rgba(vertex_colors, len(v))[:, :3] / 255.0
        np.savetxt(buf, np.concatenate([v, c], axis=1), fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
    else:
        np.savetxt(buf, v, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, np.asarray(faces, np.int64) + 1, fmt="f %d %d %d")
    return buf.getvalue()


def step_params_npz(trace: Trace, index: int) -> bytes:
    """One step as ``.npz`` bytes (no pickle): ``params/<name>``, ``vertices`` (camera frame),
    ``joints2d``, ``losses/<name>``, ``camera/<name>``, ``faces``, ``label``, ``method``."""
    step: Step = trace.steps[index]
    arrays: dict[str, np.ndarray] = {f"params/{k}": v for k, v in step.params.items()}
    if step.vertices is not None:
        arrays["vertices"] = step.vertices
    if step.joints2d is not None:
        arrays["joints2d"] = step.joints2d
    if trace.faces is not None:
        arrays["faces"] = trace.faces
    arrays.update({f"losses/{k}": np.float64(v) for k, v in step.losses.items()})
    arrays.update({f"camera/{k}": v for k, v in trace.camera.items()})
    arrays["label"] = np.array(step.label)
    arrays["method"] = np.array(trace.method)
    arrays["body"] = np.array(trace.body)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()

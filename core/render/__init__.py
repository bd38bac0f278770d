"""Rendering without OpenGL: CPU ray casting (Open3D RaycastingScene / Embree) and a
differentiable soft silhouette in PyTorch.

- :mod:`.camera`     pinhole intrinsics, pixel-centre rays, projection
- :mod:`.raycast`    per-pixel depth / face id / barycentrics / normal for a batch of meshes
- :mod:`.iuv`        DensePose IUV maps, masks, depth, all-in-one :func:`render_maps`
- :mod:`.visibility` per-vertex visibility (occlusion, back-facing, out of crop)
- :mod:`.parts`      DensePose 24 parts and the LSP 6-part grouping
- :mod:`.overlay`    shaded overlays, side/top views
- :mod:`.draw`       keypoints and points
- :mod:`.colorize`   IUV / visibility / feature maps → RGB
- :mod:`.safe`       :func:`safe_render` placeholder guard for the front ends
- :mod:`.soft`       soft silhouette (SoftRas + MeshPose visibility weights) and its losses

Importing this package does not import open3d; the raycaster loads it on first use.
"""
from .camera import as_intrinsics, pixel_ray_directions, project_points, rescale_intrinsics, spin_intrinsics
from .colorize import (LSP6_PALETTE, PART_PALETTE, apply_colormap, colorize_labels, feature_map_to_rgb,
                       iuv_to_rgb, render_visibility, visibility_colors)
from .draw import confidence_colors, draw_keypoints, draw_points
from .iuv import IUVMaps, RenderedMaps, iuv_from_raycast, render_iuv, render_maps
from .overlay import (DEFAULT_MESH_COLOR, as_rgb_image, frame_vertices, part_face_colors, render_overlay,
                      render_view, rotate_about_centroid, shade_mesh)
from .parts import (DENSEPOSE_PART_NAMES, DENSEPOSE_TO_COARSE15, DENSEPOSE_TO_LSP6, LSP6_PART_NAMES,
                    densepose_to_lsp6)
from .raycast import RaycastResult, face_normals, raycast, vertex_normals
from .safe import placeholder_image, safe_render
from .soft import (boundary_distance_loss, boundary_distance_map, meshpose_silhouette_loss,
                   silhouette_l2_loss, soft_silhouette)
from .visibility import VertexVisibility, vertex_visibility, visibility_from_raycast

__all__ = [
    "spin_intrinsics", "as_intrinsics", "rescale_intrinsics", "pixel_ray_directions", "project_points",
    "RaycastResult", "raycast", "face_normals", "vertex_normals",
    "IUVMaps", "RenderedMaps", "iuv_from_raycast", "render_iuv", "render_maps",
    "VertexVisibility", "vertex_visibility", "visibility_from_raycast",
    "DENSEPOSE_PART_NAMES", "LSP6_PART_NAMES", "DENSEPOSE_TO_LSP6", "DENSEPOSE_TO_COARSE15", "densepose_to_lsp6",
    "DEFAULT_MESH_COLOR", "as_rgb_image", "part_face_colors", "shade_mesh", "render_overlay",
    "rotate_about_centroid", "frame_vertices", "render_view",
    "draw_keypoints", "draw_points", "confidence_colors",
    "PART_PALETTE", "LSP6_PALETTE", "colorize_labels", "iuv_to_rgb", "visibility_colors", "render_visibility",
    "apply_colormap", "feature_map_to_rgb",
    "placeholder_image", "safe_render",
    "soft_silhouette", "silhouette_l2_loss", "boundary_distance_map", "boundary_distance_loss",
    "meshpose_silhouette_loss",
]

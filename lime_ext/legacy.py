"""The public GradLIME v1 / CamLIME CAM injection, reproduced only to compare with published numbers.

BUG (docs/method.md#legacy-mode): the CAM (h,w) is resized with scipy ``griddata`` to the shape of the
sample matrix (N,M) and multiplied into Z element-wise. Sample i reads CAM row i/(N-1) and superpixel j
reads CAM column j/(M-1): there is no spatial link between a superpixel and the CAM, and every sample
is rescaled differently. Use ``cam_mode='feature'`` for the method as the paper describes it.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import griddata


def legacy_cam_matrix(cam_map: np.ndarray, num_samples: int, num_segments: int) -> np.ndarray:
    """The (N,M) matrix the public code multiplies into Z: linear griddata of the CAM on a [0,1]^2 grid."""
    cam = np.asarray(cam_map, dtype=np.float64)
    if cam.ndim != 2 or min(cam.shape) < 2:
        raise ValueError(f"legacy mode needs a 2-D CAM of at least 2x2, got shape {cam.shape}")
    height, width = cam.shape
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], axis=1)
    grid_rows, grid_cols = np.mgrid[0 : 1 : num_samples * 1j, 0 : 1 : num_segments * 1j]
    resized = griddata(points, cam.ravel(), (grid_rows, grid_cols), method="linear")
    return np.nan_to_num(resized, nan=0.0)

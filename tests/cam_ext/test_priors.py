"""cam_ext.priors: the per-superpixel prior of a CAM map (docs/method.md#the-cam-prior) and its fusions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cam_ext import fuse_segment_priors, segment_prior


def test_prior_is_mean_of_normalised_upsampled_map_divided_by_max():
    segments = np.zeros((4, 4), dtype=np.int64)
    segments[:, 2:] = 1
    segments[2:, :2] = 2
    cam = torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 4)  # already (H,W): no resize; min-max gives c/3 per column
    prior = segment_prior(cam, segments)
    # segment 0: columns 0-1 rows 0-1 -> mean(0, 1/3) = 1/6; segment 1: columns 2-3 -> 5/6; segment 2 -> 1/6
    norm = 3 + 1e-7
    expected = np.array([0.5 / norm, 2.5 / norm, 0.5 / norm])
    np.testing.assert_allclose(prior, expected / expected.max(), rtol=1e-6)
    assert prior.max() == 1.0


def test_prior_upsamples_bilinearly():
    segments = np.repeat(np.arange(4), 4).reshape(1, 16).repeat(8, axis=0)  # 4 vertical strips on 8x16
    cam = torch.tensor([[0.0, 1.0]])  # left-to-right ramp at (1,2)
    up = torch.nn.functional.interpolate(cam[None, None], size=(8, 16), mode="bilinear", align_corners=False)[
        0, 0
    ]
    expected = np.array([up[:, 4 * j : 4 * j + 4].mean().item() for j in range(4)])
    np.testing.assert_allclose(segment_prior(cam, segments), expected / expected.max(), rtol=1e-6)


@pytest.mark.parametrize("cam", [torch.zeros(3, 3), torch.full((3, 3), 2.5)])
def test_flat_map_gives_uniform_prior(cam):
    segments = np.arange(9).reshape(3, 3)
    np.testing.assert_array_equal(segment_prior(cam, segments), np.ones(9))


def test_superpixel_fusion_is_mean_then_max_normalised():
    fused = fuse_segment_priors([np.array([1.0, 0.5, 0.0]), np.array([0.0, 1.0, 0.5])])
    np.testing.assert_allclose(fused, np.array([0.5, 0.75, 0.25]) / 0.75)
    np.testing.assert_array_equal(fuse_segment_priors([np.zeros(3)]), np.ones(3))

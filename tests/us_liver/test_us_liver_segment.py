"""ROI segmenter training helpers: augmentation keeps image and outlines aligned."""

from __future__ import annotations

import torch

from lesiondx.models import dice_score
from lesiondx.us_liver.segment import random_affine


def test_random_affine_moves_outlines_with_the_image():
    x = -torch.ones(6, 1, 96, 96)
    y = torch.zeros(6, 3, 96, 96)
    x[:, :, 30:50, 20:45] = 1.0  # a bright off-centre "lesion", its outline in channel 0
    y[:, 0, 30:50, 20:45] = 1.0
    y[:, 1, 10:80, 10:80] = 1.0
    xs, ys = random_affine(x, y, torch.Generator().manual_seed(3))
    assert set(ys.unique().tolist()) <= {0.0, 1.0}  # targets stay binary (nearest)
    moved = 0
    for i in range(len(x)):
        assert dice_score(xs[i, 0] > 0, ys[i, 0] > 0.5) > 0.9  # the outline still covers the bright patch
        moved += int(dice_score(ys[i, 0] > 0.5, y[i, 0] > 0.5) < 0.95)
    assert moved >= 4  # and the patch really moved on most draws
    assert xs.min() == -1.0  # outside the frame is black, not mid-grey
    same_x, same_y = random_affine(x, y, torch.Generator(), scale=0, degrees=0, shift=0)
    assert torch.allclose(same_x, x, atol=1e-5) and torch.equal(same_y, y)

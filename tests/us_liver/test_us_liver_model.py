"""DCNN-US networks and losses."""

from __future__ import annotations

import pytest
import torch

from lesiondx.us_liver.model import DcnnUs, base_backbone, batch_hard_triplet


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return base_backbone("efficientnet_lite0", 0)


def test_triplet_uses_hardest_positive_and_negative():
    # 1-D embeddings normalised to ±1 except the hard pair; build 2-D points by hand
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    n = torch.nn.functional.normalize(e, dim=1)
    d = torch.cdist(n, n)
    expected = []
    for a in range(4):
        pos = max(d[a, p] for p in range(4) if p != a and y[p] == y[a])
        neg = min(d[a, q] for q in range(4) if y[q] != y[a])
        expected.append(max(0.0, float(pos - neg + 0.2)))
    got = batch_hard_triplet(e, y, 0.2)
    assert got.item() == pytest.approx(sum(expected) / 4, abs=1e-5)
    assert got.item() > 0


def test_triplet_zero_when_classes_well_separated_and_skips_lonely_anchors():
    e = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    y = torch.tensor([0, 0, 1, 1])
    assert batch_hard_triplet(e, y, 0.3).item() == pytest.approx(0.0, abs=1e-6)
    # one class only: no valid anchor, loss is 0 but still differentiable
    e.requires_grad_(True)
    loss = batch_hard_triplet(e, torch.zeros(4, dtype=torch.long), 0.3)
    loss.backward()
    assert loss.item() == 0.0


def test_trunk_plus_tail_equals_full_backbone(lite0):
    from lesiondx.models import build_backbone

    trunk, tail, features, pretrained = lite0
    full = build_backbone("efficientnet_lite0").module.eval()
    grey = torch.rand(2, 64, 64) * 255
    x = (grey[:, None].expand(-1, 3, -1, -1) / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        assert torch.allclose(tail.eval()(trunk(grey)), full(x), atol=1e-4)
    assert features == 1280 and pretrained
    assert not any(p.requires_grad for p in trunk.parameters())


def test_model_lb_has_separate_branch_weights_and_background_head(lite0):
    trunk, tail, features, _ = lite0
    net = DcnnUs(tail, features, branches="LB", n_background_types=3).eval()
    lesion_w = next(net.lesion.parameters())
    background_w = next(net.background.parameters())
    assert lesion_w.data_ptr() != background_w.data_ptr()
    f = trunk(torch.rand(3, 64, 64) * 255)
    assert net(f, f).shape == (3,)
    z, zb = net.embed(f, f)
    assert z.shape == (3, 2 * features) and net.background_head(zb).shape == (3, 3)
    with pytest.raises(ValueError, match="background"):
        net(f)
    single = DcnnUs(tail, features, branches="L")
    assert single.background is None and single.head[-1].in_features == features

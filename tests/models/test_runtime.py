"""The ONNX Runtime engine: choice and staleness rules, and a predict process that never imports torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lesiondx.runtime import EngineError, choose_engine, onnxruntime_available, torch_available
from lesiondx_testdata import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
COVID = REPO / "models" / "ct-covid"
needs_exports = pytest.mark.skipif(not (onnxruntime_available() and (COVID / "model.onnx").is_file()),
                                   reason="onnxruntime or models/ct-covid/model.onnx missing")


@needs_exports
def test_auto_uses_onnx_for_a_matching_export_and_never_a_stale_one(tmp_path: Path):
    pair = [(COVID / "model.onnx", COVID / "model.pt")]
    assert choose_engine(pair, "auto") == "onnx" and choose_engine(pair, "onnx") == "onnx"
    # the same export beside another checkpoint (retrained, not re-exported): never used silently
    shutil.copy(COVID / "model.onnx", tmp_path / "model.onnx")
    (tmp_path / "model.pt").write_bytes((COVID / "model.pt").read_bytes() + b"\0")
    stale = [(tmp_path / "model.onnx", tmp_path / "model.pt")]
    with pytest.raises(EngineError, match="exported from another model.pt"):
        choose_engine(stale, "onnx")
    if torch_available():
        assert choose_engine(stale, "auto") == "torch"
    missing = [(tmp_path / "absent.onnx", tmp_path / "model.pt")]
    with pytest.raises(EngineError, match="no ONNX export"):
        choose_engine(missing, "onnx")


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="engine must be one of auto, onnx, torch"):
        choose_engine([], "tensorrt")


NO_TORCH_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from lesiondx.cli import app
import lesiondx.service.api, lesiondx.service.worker  # what `lesiondx serve` imports
runner = CliRunner()
for args in (["predict", "--task", "us-liver", sys.argv[1], "--json", "--out", sys.argv[3]],
             ["predict", "--task", "ct-covid", sys.argv[2], "--json", "--out", sys.argv[3]],
             ["predict", "--task", "ct-liver", sys.argv[2], "--json"]):
    result = runner.invoke(app, args)
    if args[2] == "ct-liver":  # a chest series: the ct-liver input gate refuses it (exit 2) after reading it
        assert result.exit_code == 2 and "refused for task ct-liver" in result.output, (args, result.output[-2000:])
        continue
    assert result.exit_code == 0, (args, result.output[-2000:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm", "segmentation_models_pytorch", "pytorch_grad_cam"))
print(json.dumps(heavy))
assert not heavy, heavy
"""


@needs_exports
def test_predict_on_the_onnx_engine_never_imports_torch(tmp_path: Path):
    image = EXAMPLES / "aul_liver_us_mini" / "images" / "malignant_010.jpg"
    series = EXAMPLES / "covid_ct_md_mini" / "series" / "P002"
    if not image.is_file() or not series.is_dir():
        pytest.skip("bundled examples missing")
    env = os.environ | {"PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        "LESIONDX_ENGINE": "auto"}
    done = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(image), str(series), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert list(tmp_path.glob("*_us_liver.png")), "no us-liver overlay written"


SHIPPED = [(REPO / "models" / "ct-covid" / "model.onnx", REPO / "models" / "ct-covid" / "model.pt"),
           (REPO / "models" / "us-liver" / "segmenter.onnx", REPO / "models" / "us-liver" / "us_liver.pt"),
           (REPO / "models" / "us-liver" / "classifier.onnx", REPO / "models" / "us-liver" / "us_liver.pt"),
           (REPO / "models" / "ct-liver" / "classifier.onnx", REPO / "models" / "ct-liver" / "classifier.pt")]


@needs_exports
@pytest.mark.parametrize("export,checkpoint", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p, _ in SHIPPED])
def test_every_shipped_network_has_a_small_current_export(export: Path, checkpoint: Path):
    from lesiondx.models.metrics import MAX_SHIPPED_MB, size_mb

    assert export.is_file(), f"{export} missing: run `python -m lesiondx.export_onnx`"
    assert size_mb(export) <= MAX_SHIPPED_MB
    assert choose_engine([(export, checkpoint)], "onnx") == "onnx"  # exported from this very checkpoint


def test_an_export_over_the_shipping_limit_is_kept_with_a_warning(tmp_path: Path):
    """A hospital's own run may be larger than the repository's 25 MB limit for shipped files: the checked export
    stays usable (a warning says not to commit it) instead of failing the end of a long training."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from lesiondx.models.export import export_onnx
    from lesiondx.models.metrics import MAX_SHIPPED_MB, size_mb

    side = int((MAX_SHIPPED_MB * 1.1 * 2**20 / 4) ** 0.5)  # one square linear layer ~10 % over the limit
    net = torch.nn.Linear(side, side)
    with pytest.warns(UserWarning, match="above the 25 MB limit"):
        path = export_onnx(net, [torch.randn(2, side)], tmp_path / "big.onnx", inputs=["x"], outputs=["y"], meta={})
    assert size_mb(path) > MAX_SHIPPED_MB
    from lesiondx.runtime import OnnxNet

    x = torch.randn(3, side)
    got = OnnxNet.load(path).run(x=x.numpy())["y"]
    assert got.shape == (3, side) and abs(got - net(x).detach().numpy()).max() < 1e-3


def test_lesiondx_models_moves_every_tasks_shipped_model(tmp_path, monkeypatch):
    """$LESIONDX_MODELS (a site's own copy of models/) was honoured by ct-covid and the model-card pages only:
    us-liver and ct-liver still loaded the repository's models. Now every task's 'default' resolves there."""
    import pytest

    from lesiondx.ct_covid.model import default_model_dir
    from lesiondx.ct_liver.pipeline import load_bundle
    from lesiondx.runtime import REPO_MODELS, shipped_model_dir
    from lesiondx.service.model_cards import card_path
    from lesiondx.us_liver.inference import resolve_model

    assert shipped_model_dir("us-liver") == REPO_MODELS / "us-liver"
    monkeypatch.setenv("LESIONDX_MODELS", str(tmp_path))
    assert default_model_dir() == tmp_path / "ct-covid" and card_path("us-liver") is None
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "us-liver")):
        resolve_model("default")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "ct-liver")):
        load_bundle("default")

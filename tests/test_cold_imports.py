"""A cold ``lesiondx`` process imports only what its command needs (issue 19: a cold ultrasound ``predict``
under 3 s, most of which used to be imports of scipy.stats, matplotlib, statsmodels, sklearn...).

Checked by module names in a fresh interpreter, not by timing: ``import lesiondx.cli`` loads no
scientific library at all, and a whole ``predict --task us-liver`` (ONNX Runtime, overlay written) loads none
of the statistics, plotting, training, service or DICOM libraries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
US_IMAGE = ROOT / "examples" / "aul_liver_us_mini" / "images" / "malignant_010.jpg"

# not needed by a us-liver predict (each cost 0.1-2 s of a cold start on 2 cores)
NOT_FOR_PREDICT = [
    "scipy.stats", "scipy.signal", "matplotlib", "statsmodels", "sklearn", "skimage", "pandas", "torch",
    "torchvision", "fastapi", "starlette", "uvicorn", "sqlalchemy", "jinja2", "pynetdicom", "highdicom", "pydicom",
    "nibabel", "SimpleITK", "dicomanonymizer", "cryptography",
]
# the CLI module itself: typer and rich only
NOT_FOR_CLI = [*NOT_FOR_PREDICT, "numpy", "scipy", "onnxruntime", "PIL", "yaml"]

SCRIPT = """
import importlib, json, sys
watch = json.loads(sys.argv[1])
for name in watch.get("modules", []):
    importlib.import_module(name)
import lesiondx.cli
after_cli = sorted(m for m in watch["cli"] if m in sys.modules)
result = None
if len(sys.argv) > 2:
    try:
        lesiondx.cli.app(sys.argv[2:], standalone_mode=False)
    except SystemExit as exc:
        result = f"exit {exc.code}"
after_predict = sorted(m for m in watch["predict"] if m in sys.modules)
print(json.dumps({"cli": after_cli, "predict": after_predict, "result": result}))
"""


def _loaded(*args: str, modules: tuple[str, ...] = ()) -> dict:
    """In a fresh interpreter: import ``modules`` and lesiondx.cli, run the CLI with ``args``; which of the
    watched libraries are loaded after the imports (``cli``) and at the end (``predict``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    watch = json.dumps({"cli": NOT_FOR_CLI, "predict": NOT_FOR_PREDICT, "modules": list(modules)})
    proc = subprocess.run([sys.executable, "-c", SCRIPT, watch, *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_cli_loads_no_scientific_library():
    assert _loaded()["cli"] == []


@pytest.mark.skipif(not US_IMAGE.is_file(), reason="bundled example image missing")
def test_us_liver_predict_loads_only_what_it_needs(tmp_path):
    pytest.importorskip("onnxruntime")
    out = _loaded("predict", "--task", "us-liver", str(US_IMAGE), "--out", str(tmp_path), "--engine", "onnx",
                  "--json")
    assert out["result"] is None  # the command ran to the end
    assert list(tmp_path.glob("*_us_liver.png")), "no overlay written"
    assert out["cli"] == []
    assert out["predict"] == []


def test_ct_covid_task_module_leaves_plotting_and_templates_out():
    """The ct-covid task imports the report helpers (evaluate); matplotlib and jinja2 come only with a report."""
    loaded = _loaded(modules=("lesiondx.ct_covid.task", "lesiondx.stats.evaluation"))["predict"]
    assert not {"matplotlib", "jinja2", "statsmodels", "torch", "fastapi", "sqlalchemy"} & set(loaded)

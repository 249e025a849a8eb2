"""Write the ONNX exports of trained models beside their checkpoints (training already does this; run it
once for checkpoints trained before it did, or after replacing a ``.pt``). Needs ``lesiondx[train]``.

    python -m lesiondx.export_onnx                          # the shipped models/ct-covid, us-liver, ct-liver
    python -m lesiondx.export_onnx --task ct-covid RUN_DIR  # a run directory

Every export is checked against torch on an example batch before it is kept (stored as `export_check`).
IRCADb-derived weights (a run dir's liver_net.pt / detector.pt) are never exported: they may not be shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def export(task: str, folder: Path) -> list[Path]:
    """The ``.onnx`` files of the model in ``folder`` for ``task``; returns their paths."""
    if task == "ct-covid":
        from lesiondx.ct_covid.model import export_model
        from lesiondx.ct_covid.ood import export_encoder_features

        return [export_model(folder), export_encoder_features(folder)]
    if task == "us-liver":
        from lesiondx.us_liver.inference import resolve_model
        from lesiondx.us_liver.torch_bundle import export_bundle

        return export_bundle(resolve_model(folder))
    if task == "ct-liver":
        from lesiondx.ct_liver.pipeline import export_classifier

        path = folder / "classifier.pt"
        return [export_classifier(path)] if path.is_file() else []
    raise ValueError(f"unknown task {task!r}; choose us-liver, ct-liver or ct-covid")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("us-liver", "ct-liver", "ct-covid"), help="task of RUN_DIR")
    parser.add_argument("run_dir", nargs="?", type=Path, help="run directory (default: the shipped models)")
    args = parser.parse_args(argv)
    if (args.task is None) != (args.run_dir is None):
        parser.error("give --task and RUN_DIR together, or neither (the shipped models)")
    jobs = [(args.task, args.run_dir)] if args.task else [(t, REPO_MODELS / t) for t in ("ct-covid", "us-liver", "ct-liver")]
    for task, folder in jobs:
        for path in export(task, folder):
            print(f"{task}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

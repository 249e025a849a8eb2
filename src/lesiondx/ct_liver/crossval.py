"""Leave-one-patient-out evaluation on a CT folder with liver and lesion masks: for each patient, train
the liver U-Net and detector on the others and evaluate on that patient (rule-based parts need no training).

    python -m lesiondx.ct_liver.crossval /work/shared/data/liver_ircadb01_p01_p07 runs/ct_liver/lopo
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lesiondx.config import config_to_dict

from .config import load
from .evaluation import evaluate_ct, liver_values
from .pipeline import Bundle
from .study import labelled_studies
from .task import train_ircadb


def leave_one_patient_out(data: Path, out: Path, config: Path | None = None, **overrides: Any) -> dict:
    """Per held-out patient: metrics of the rule-based parts, plus the learned parts trained on the
    other patients when they hold at least one liver-lesion box (else recorded as not trainable)."""
    cfg = load(config, **overrides)
    torch.set_num_threads(max(1, cfg.threads))
    out.mkdir(parents=True, exist_ok=True)
    studies = labelled_studies(data)
    patients = sorted({s.patient_id for s in studies})
    result: dict[str, Any] = {"config": config_to_dict(cfg), "patients": patients, "folds": {}}
    for held in patients:
        start = time.time()
        train = [s for s in studies if s.patient_id != held]
        test = [s for s in studies if s.patient_id == held]
        has_boxes = any(liver_values(data, s.patient_id, s.lesion)[0] for s in train)
        fold_cfg = replace(cfg, train_detector=cfg.train_detector and has_boxes)
        run = out / f"without_{held}"
        run.mkdir(parents=True, exist_ok=True)
        info = train_ircadb(data, run, fold_cfg, studies=train, log=print) if train else {}
        liver_net = detector = None
        if (run / "liver_net.pt").is_file():
            from .pipeline import load_bundle

            b = load_bundle(run)
            liver_net, detector = b.liver_net, b.detector
        bundle = Bundle(cfg, run, f"lopo-without-{held}", None, "top", liver_net, detector)
        fold = evaluate_ct(data, test, bundle)
        fold["trained_on"] = [s.patient_id for s in train]
        fold["detector_trained"] = bool(detector is not None)
        if not has_boxes:
            fold["note"] = "training patients hold no liver-lesion box: the learned detector cannot be trained in this fold"
        fold["seconds"] = round(time.time() - start, 1)
        fold["train_info"] = info
        result["folds"][held] = fold
        (out / "lopo.json").write_text(json.dumps(result, indent=2, default=float))
        print(f"fold {held}: {fold['seconds']} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="leave-one-patient-out evaluation (ct-liver)")
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    leave_one_patient_out(args.data, args.out, args.config)


if __name__ == "__main__":
    main()

"""End to end on real AUL images: train a tiny DCNN-US, evaluate it on a renamed copy of the folder,
predict with proposed and user ROIs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from lesiondx.io import ImageReadError
from lesiondx.models import MAX_SHIPPED_MB, size_mb
from lesiondx.us_liver import task

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "examples" / "aul_liver_us_mini"
TINY = """crop_size: 64
epochs: 3
patience: 3
augment_copies: 1
tta_copies: 1
folds: 3
batch_size: 4
seg_size: 64
seg_epochs: 1
seg_batch_size: 4
"""


@pytest.fixture(scope="module")
def mini() -> Path:
    if not (MINI / "labels.csv").is_file():
        pytest.skip(f"example folder {MINI} missing")
    return MINI


@pytest.fixture(scope="module")
def run(mini: Path, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("usl")
    (root / "tiny.yaml").write_text(TINY)
    return task.train(mini, root / "run", root / "tiny.yaml")


def test_train_writes_run_directory(run: Path, mini: Path):
    for name in ("us_liver.pt", "config.yaml", "data_hash.txt", "curves.csv", "curves.png", "cv_predictions.csv"):
        assert (run / name).is_file(), name
    assert size_mb(run / "us_liver.pt") < MAX_SHIPPED_MB
    assert len((run / "data_hash.txt").read_text().strip()) == 64
    oof = pd.read_csv(run / "cv_predictions.csv")
    labels = pd.read_csv(mini / "labels.csv")
    # normal frames are not classified; every benign/malignant frame gets exactly one out-of-fold score
    assert sorted(oof["image_id"]) == sorted(labels.loc[labels["label"] != "normal", "image_id"])
    assert oof["score"].between(0, 1).all()
    summary = json.loads((run / "summary.json").read_text())
    assert 0 <= summary["threshold"] <= 1 and summary["pretrained_backbone"]


def test_repeated_partitions_fold_seed_0_is_the_training_partition(run: Path, mini: Path, tmp_path: Path):
    from lesiondx.stats import auc_score
    from lesiondx.us_liver.benchmark import repeated_partitions
    from lesiondx.us_liver.config import load_us_config

    table = repeated_partitions(load_us_config(run / "config.yaml"), mini, tmp_path, 2)
    assert list(table["fold_seed"]) == [0, 1] and (tmp_path / "repeated_partitions.csv").is_file()
    oof = pd.read_csv(run / "cv_predictions.csv")
    # same recipe, same features, same folds as train(): the seed-0 row reproduces its out-of-fold AUC
    assert table.loc[0, "model_auc"] == pytest.approx(auc_score(oof["label"].eq("malignant").to_numpy(), oof["score"]))
    assert table[["model_auc", "baseline_auc"]].stack().between(0, 1).all() and table["p"].between(0, 1).all()


def _renamed_copy(src: Path, dst: Path) -> Path:
    """Same layout, other file names and ids: evaluation must not depend on them."""
    frame = pd.read_csv(src / "labels.csv")
    for col in ("image", "lesion_mask", "liver_mask", "sector_mask"):
        new = []
        for i, rel in enumerate(frame[col]):
            if not isinstance(rel, str):
                new.append(rel)
                continue
            target = Path(rel).parent / f"case{i:03d}{Path(rel).suffix}"
            (dst / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / rel, dst / target)
            new.append(str(target))
        frame[col] = new
    frame["image_id"] = [f"case{i:03d}" for i in range(len(frame))]
    frame.to_csv(dst / "labels.csv", index=False)
    return dst


@pytest.fixture(scope="module")
def evaluated(run: Path, mini: Path, tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp_path = tmp_path_factory.mktemp("usl_eval")
    data = _renamed_copy(mini, tmp_path / "data")
    return data, tmp_path / "eval", task.evaluate(str(run), data, tmp_path / "eval")


def test_evaluate_on_renamed_folder(run: Path, evaluated):
    data, out, metrics = evaluated
    tmp_path = out.parent
    preds = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert list(preds["image_id"]) == list(pd.read_csv(data / "labels.csv")["image_id"])
    assert {"image_id", "patient_id", "label", "score"} <= set(preds.columns)
    for level in ("image", "patient"):
        for key in ("auc", "auc_ci", "accuracy", "sensitivity", "specificity", "ppv", "npv", "threshold"):
            assert key in metrics[level], (level, key)
        assert metrics[level]["threshold"] == pytest.approx(json.loads((run / "summary.json").read_text())["threshold"])
    assert metrics["image"]["n"] == int((preds["label"] != "normal").sum())
    assert metrics["normal"]["n"] == int((preds["label"] == "normal").sum())
    assert "ground_truth_roi" in metrics and "subgroup_1024_wide" in metrics
    assert (tmp_path / "eval" / "report.html").is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["model_version"] == metrics["model_version"]
    assert metrics["levels"]["excluded"] == {"normal": int((preds["label"] == "normal").sum())}
    assert metrics["image"]["threshold_chosen_on_these_data"] is False
    # the renamed copy holds the very files the run trained on: found by content (training_files.csv), said first
    assert metrics["seen_in_training"]["n_seen"] == len(preds) == len(pd.read_csv(run / "training_files.csv"))
    assert metrics["summary"][0].startswith("NOT AN INDEPENDENT TEST: every evaluated row")
    assert "NOT AN INDEPENDENT TEST" in (tmp_path / "eval" / "report.html").read_text()


FIGURES = ("n", "n_pos", "n_neg", "auc", "auc_ci", "auc_bootstrap_ci", "threshold", "threshold_source", "sensitivity",
           "sensitivity_ci", "specificity", "specificity_ci", "ppv", "npv", "youden", "calibration", "warnings")


def test_report_on_evaluate_predictions_gives_the_same_figures(evaluated, tmp_path: Path):
    """`lesiondx report predictions.csv` (settings file beside it) and with the levels and threshold given
    explicitly reproduce evaluate's figures exactly."""
    from typer.testing import CliRunner

    from lesiondx.cli import app

    _, out, metrics = evaluated
    csv = out / "predictions.csv"
    threshold = repr(metrics["image"]["threshold"])
    runs = {"settings": [], "explicit": ["--positive", "malignant", "--negative", "benign", "--threshold", threshold]}
    for name, extra in runs.items():
        res = CliRunner().invoke(app, ["report", str(csv), "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        again = json.loads((tmp_path / name / "metrics.json").read_text())
        for level in ("image", "patient"):
            for key in FIGURES if name == "settings" else set(FIGURES) - {"threshold_source"}:
                assert again[level][key] == metrics[level][key], (name, level, key)
        assert again["levels"] == metrics["levels"]


def test_evaluate_cli_on_image_and_label_only_folder(run: Path, mini: Path, tmp_path: Path):
    """What an external site has: images and labels, no outlines. Proposed ROIs, said so; clear errors for an
    empty labels.csv and a folder of another task."""
    from typer.testing import CliRunner

    from lesiondx.cli import app

    folder = tmp_path / "plain"
    shutil.copytree(mini / "images", folder / "images")
    pd.read_csv(mini / "labels.csv")[["image_id", "label", "image"]].to_csv(folder / "labels.csv", index=False)
    res = CliRunner().invoke(app, ["evaluate", "--task", "us-liver", "--model", str(run), "--data", str(folder),
                                   "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    assert "ROIs proposed by the model: no outlines given" in res.output and "excluded: normal (1)" in res.output
    assert not res.output.lstrip().startswith("{")  # a summary, not the metrics JSON (that needs --json)
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert "ground_truth_roi" not in m and m["roi_proposal"]["outlines_given"] == 0 and m["image"]["n"] == 6
    assert "no outlines given" in (tmp_path / "e" / "report.html").read_text()
    (folder / "labels.csv").write_text("image_id,label,image\n")
    empty = CliRunner().invoke(app, ["evaluate", "--task", "us-liver", "--model", str(run), "--data", str(folder),
                                     "--out", str(tmp_path / "f")])
    assert empty.exit_code == 2 and "labels.csv has no rows" in " ".join(empty.output.split())
    assert "Traceback" not in empty.output
    chest = CliRunner().invoke(app, ["evaluate", "--task", "us-liver", "--model", str(run), "--data",
                                     str(REPO / "examples" / "covid_ct_md_mini"), "--out", str(tmp_path / "g")])
    said = " ".join(chest.output.split())  # the console may wrap long lines
    assert chest.exit_code == 2 and "covid_ct_md folder" in said and "use --task ct-covid" in said


def test_predict_proposed_and_user_roi(run: Path, mini: Path, tmp_path: Path):
    image = sorted((mini / "images").glob("malignant_*.jpg"))[0]
    out = task.predict([image], str(run), tmp_path)
    json.dumps(out)
    r = out["results"][0]
    assert 0 <= r["probability"] <= 1 and r["label"] in ("benign", "malignant") and r["model_version"]
    assert r["roi_source"] == "proposed"
    assert 0 <= r["lesion_probability"] <= 1 and r["lesion_found"] == (r["lesion_probability"] >= 0.3)
    with Image.open(r["overlay"]) as png, Image.open(image) as src:
        assert png.size[0] == src.size[0] and png.size[1] >= src.size[1]
    user = task.predict([image], str(run), None, roi="100,120,80,60")["results"][0]
    assert user["box"] == [100, 120, 180, 180] and user["roi_source"] == "user" and user["overlay"] is None
    assert user["lesion_found"] is True  # the user's ROI says there is a lesion


def test_predict_rejects_bad_input(run: Path, tmp_path: Path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        task.predict([bad], str(run), None)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        task.predict([bad], str(tmp_path / "nowhere"), None)


def test_dcnn_head_still_trains_and_predicts(mini: Path, tmp_path: Path):
    """The Model_LB head (trained dropout → BN → linear on trunk features) stays usable next to the probe."""
    torch.set_num_threads(1)
    (tmp_path / "dcnn.yaml").write_text(TINY + "head: dcnn\nepochs: 1\nseg_epochs: 0\nseg_max_images: 4\n")
    run = task.train(mini, tmp_path / "run", tmp_path / "dcnn.yaml")
    states = torch.load(run / "us_liver.pt", weights_only=False)["states"]
    assert any(k.startswith("lesion.") for k in states["member0"])  # a DcnnUs member, not a probe head
    r = task.predict([sorted((mini / "images").glob("benign_*.jpg"))[0]], str(run), None)["results"][0]
    assert 0 <= r["probability"] <= 1


def test_size_free_gain_free_recipe_trains_exports_and_predicts(mini: Path, tmp_path: Path):
    """The session-5 options (views B + S, liver z-score, scanner-shift augmentation) go through train, the ONNX
    export (CAM on the size-free view: no L or M) and predict with a heat map."""
    torch.set_num_threads(1)
    extra = "views: BS\nintensity_norm: liver_z\naugment_policy: scanner\nseg_epochs: 0\nseg_max_images: 4\n"
    (tmp_path / "sf.yaml").write_text(TINY + extra)
    run = task.train(mini, tmp_path / "run", tmp_path / "sf.yaml")
    assert (run / "classifier.onnx").is_file()
    r = task.predict([sorted((mini / "images").glob("malignant_*.jpg"))[0]], str(run), tmp_path / "pred")["results"][0]
    assert 0 <= r["probability"] <= 1 and r["overlay"] and Path(r["overlay"]).is_file()

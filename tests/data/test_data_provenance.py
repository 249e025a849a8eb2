"""lesiondx.data.provenance: evaluate says which rows a model was trained or tuned on, matched by file content
(SYNTHETIC PNG frames), and the shipped lists match the shared folders their model cards name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesiondx.data import file_sha256, load_manifest, read_training_files, seen_in_training, write_training_files
from lesiondx_testdata import REPO, shared_dataset


def _folder(root: Path, n: int, seed: int) -> Path:
    """``n`` SYNTHETIC noise PNGs with a labels.csv."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / "images" / f"f{i}.png")
    pd.DataFrame({"image_id": [f"f{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                  "label": ["benign", "malignant"] * (n // 2), "image": [f"images/f{i}.png" for i in range(n)]}
                 ).to_csv(root / "labels.csv", index=False)
    return root


def test_rows_seen_in_training_are_found_by_content_not_by_name(tmp_path):
    train = _folder(tmp_path / "train", 4, seed=0)
    model = tmp_path / "model"
    model.mkdir()
    write_training_files(model, [(train / "images" / "f0.png", "heads"), (train / "images" / "f1.png", "heads")],
                         root=train)
    write_training_files(model, [(train / "images" / "f1.png", "threshold")], root=train, append=True)
    listed = read_training_files(model)
    assert listed[file_sha256(train / "images" / "f1.png")] == ("heads", "threshold") and len(listed) == 2
    test = _folder(tmp_path / "test", 4, seed=1)  # other pixels
    shutil.copy(train / "images" / "f1.png", test / "images" / "renamed.png")  # the same file under another name
    with Image.open(train / "images" / "f0.png") as img:  # the same pixels, re-encoded: other bytes
        img.save(test / "images" / "f0.png", optimize=True, pnginfo=None, compress_level=1)
    frame = pd.read_csv(test / "labels.csv")
    frame.loc[3, "image"] = "images/renamed.png"
    frame.to_csv(test / "labels.csv", index=False)
    seen = seen_in_training(model, load_manifest(test))
    assert seen.image_ids == ("f3",) and dict(seen.by_role) == {"heads": 1, "threshold": 1}
    assert seen.headline.startswith("NOT AN INDEPENDENT TEST: 1 of 4 evaluated rows were used to train or tune")
    assert seen.fields()["seen_in_training"]["n_seen"] == 1
    untrained = seen_in_training(tmp_path / "no_list", load_manifest(test))
    assert untrained.headline is None and untrained.fields()["seen_in_training"]["checked"] is False
    clean = seen_in_training(model, load_manifest(_folder(tmp_path / "clean", 2, seed=2)))
    assert clean.n_seen == 0 and clean.headline is None


@pytest.mark.parametrize(("model", "folder", "expected"), [
    ("us-liver", "aul_liver_us", "all"),
    ("ct-liver", "aul_liver_us", "benign/malignant"),
    ("ct-covid", "chest_ct_lung_cancer", "all"),
])
def test_the_shipped_lists_name_the_folders_their_model_cards_name(model, folder, expected):
    data = shared_dataset(folder)
    manifest = load_manifest(data)
    seen = seen_in_training(REPO / "models" / model, manifest)
    frame = manifest.frame
    want = frame if expected == "all" else frame[frame["label"].isin(["benign", "malignant"])]
    assert set(seen.image_ids) == set(want["image_id"].astype(str))

import numpy as np

from lesiondx.ct_liver import task
from lesiondx.ct_liver.candidates import detect_candidates
from lesiondx.ct_liver.detector import lesion_boxes, train_detector
from lesiondx.ct_liver.synthetic import phantom_slice
from lesiondx.data import mask_box
from lesiondx.io import read_image, read_raster_array
from lesiondx.models import save_checkpoint

from ct_liver_helpers import ircadb_rows, windowed_slices


def test_candidate_detector_finds_a_phantom_lesion():
    rng = np.random.default_rng(3)
    slices = [phantom_slice("MET", "portal-venous", size=128, centre=(45, 55), radius=9, rng=rng) for _ in range(3)]
    hu = np.stack([s[0] for s in slices])
    liver = np.stack([s[1] for s in slices])
    dets = [d for d in detect_candidates(hu, liver, 2.0) if d.score >= 0.25]
    truth = mask_box(slices[1][2])
    assert any(d.slice == 1 and d.box.iou(truth) >= 0.3 for d in dets)
    assert not detect_candidates(hu, np.zeros_like(liver), 2.0)  # no liver, nothing to search


def test_tiny_detector_trains_on_real_slices_and_predict_runs(ircadb_folder, tmp_path):
    """A few real IRCADb slices (read in place; weights stay in tmp_path): 3 training steps, then predict."""
    rows = ircadb_rows(ircadb_folder, inside=True, n=3)
    grey = [np.clip((read_image(ircadb_folder / p).pixels + 160) / 400 * 255, 0, 255) for p in rows["image"]]
    boxes = [lesion_boxes(read_raster_array(ircadb_folder / p).astype(int)) for p in rows["lesion_mask"]]
    assert any(boxes)
    model = train_detector(grey, boxes, input_px=256, steps=2, batch_size=1)
    run = tmp_path / "run"
    save_checkpoint(run / "detector.pt", {"detector": model}, {"test": True})
    (run / "config.yaml").write_text("detector_px: 256\nscore_threshold: 0.0\n")
    study = windowed_slices(ircadb_folder, rows, tmp_path / "slices")
    result = task.predict([study], str(run), tmp_path / "out")
    assert "learned" in result["detector"]
    for les in result["lesions"]:
        assert 0 <= les["slice"] < 3 and len(les["box"]) == 4 and isinstance(les["inside_liver"], bool)

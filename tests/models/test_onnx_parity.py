"""ONNX Runtime vs torch on real images for every shipped network (tolerances stated per test).

Probabilities: max abs difference ≤ 1e-4. Class activation maps (logit units): ≤ 1e-3 × max(1, |map|).
Bundled examples always; the full shared datasets when present (skipped otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs the torch engine: pip install -e '.[train]'")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

from lesiondx.runtime import OnnxNet  # noqa: E402
from lesiondx_testdata import EXAMPLES, SHARED_DATA  # noqa: E402

PROB_TOL = 1e-4
CAM_TOL = 1e-3
MODELS = Path(__file__).resolve().parents[2] / "models"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} not present (run `python -m lesiondx.export_onnx`)")
    return path


def _us_images() -> list[Path]:
    images = sorted((EXAMPLES / "aul_liver_us_mini" / "images").glob("*.jpg"))[::2]
    shared = SHARED_DATA / "aul_liver_us" / "images"
    if shared.is_dir():  # a spread of the full shared set: every 150th frame (benign, malignant, normal)
        images += sorted(shared.glob("*.jpg"))[75::150]
    return images


@pytest.fixture(scope="module")
def us_bundles():
    from lesiondx.us_liver.inference import load_bundle

    _need(MODELS / "us-liver" / "classifier.onnx")
    return load_bundle("default", engine="onnx"), load_bundle("default", engine="torch")


@pytest.mark.slow
def test_us_liver_segmenter_and_classifier_agree_on_real_frames(us_bundles):
    from lesiondx.us_liver.probe import ProbeExport
    from lesiondx.us_liver.rois import UsFrame, read_frame
    from lesiondx.us_liver.views import seg_input_array, view_crops

    onnx, ref = us_bundles
    assert onnx.version == ref.version and onnx.threshold == ref.threshold and onnx.config == ref.config
    cfg = ref.config
    cam_ref = ProbeExport(ref.ensemble, "L")
    worst = {"seg": 0.0, "prob": 0.0, "cam": 0.0}
    for image in _us_images():
        grey = read_frame(image).grey
        x = seg_input_array(grey, cfg.seg_size)
        with torch.inference_mode():
            seg_ref = torch.sigmoid(ref.segmenter(torch.from_numpy(x))).numpy()
        seg = onnx.segmenter.run(x=x)["prob"]
        worst["seg"] = max(worst["seg"], float(np.abs(seg - seg_ref).max()))
        proposal = onnx.propose(grey)
        if proposal.box is None:
            continue
        frame = UsFrame(grey, proposal.lesion, proposal.liver if proposal.liver.any() else None,
                        proposal.sector if proposal.sector.any() else None)
        crops = view_crops(frame, cfg, np.random.default_rng(cfg.seed), cfg.tta_copies)
        out = onnx.classifier.run(**crops)
        with torch.inference_mode():  # the export wrapper in torch; the next test checks it against the ensemble
            prob_ref, cam = (t.numpy() for t in cam_ref(*(torch.from_numpy(crops[v]) for v in cfg.views))[:2])
        worst["prob"] = max(worst["prob"], float(np.abs(out["prob"] - prob_ref).max()))
        worst["cam"] = max(worst["cam"], float(np.abs(out["cam"] - cam).max() / max(1.0, np.abs(cam).max())))
    assert worst["seg"] <= PROB_TOL and worst["prob"] <= PROB_TOL and worst["cam"] <= CAM_TOL, worst


def test_us_liver_predictions_agree_between_engines(us_bundles):
    from lesiondx.us_liver.inference import frame_for, score_frame

    onnx, ref = us_bundles
    for image in sorted((EXAMPLES / "aul_liver_us_mini" / "images").glob("*.jpg"))[::3]:
        frame, source, peak = frame_for(onnx, image)
        frame_ref, _, peak_ref = frame_for(ref, image)
        assert abs(peak - peak_ref) <= PROB_TOL
        # masks from thresholded probabilities: a pixel may flip where a probability sits on 0.5
        assert (frame.lesion != frame_ref.lesion).mean() < 1e-3
        a, b = score_frame(onnx, frame, cam=True), score_frame(ref, frame)  # torch: ProbeEnsemble.forward
        assert abs(a.probability - b.probability) <= PROB_TOL
        # never an empty map (scaled to 1 on the crop; bilinear pasting onto the frame may lower the peak a little)
        assert a.heatmap.shape == frame.grey.shape and a.heatmap.max() > 0.9


def _ct_series() -> list[tuple[str, np.ndarray, bool, tuple | None]]:
    from lesiondx.io import read_image, read_study

    study = read_study(EXAMPLES / "covid_ct_md_mini" / "series" / "P002")
    series = [("mini P002", study.pixels, study.is_hu, study.spacing)]
    shared = SHARED_DATA / "covid_ct_md_sample"
    if (shared / "labels.csv").is_file():
        import pandas as pd

        rows = pd.read_csv(shared / "labels.csv").sort_values(["patient_id", "slice_index"])
        for patient, part in rows.groupby("patient_id"):
            mid = len(part) // 2
            images = [read_image(shared / p) for p in part["image"].iloc[mid - 4 : mid + 4]]
            series.append((str(patient), np.stack([im.pixels for im in images]), images[0].is_hu, images[0].spacing))
    return series


@pytest.mark.slow
def test_ct_covid_series_agree_on_real_slices():
    from lesiondx.ct_covid.model import load_model
    from lesiondx.ct_covid.pipeline import analyse_series

    _need(MODELS / "ct-covid" / "model.onnx")
    onnx, ref = load_model("default", engine="onnx"), load_model("default", engine="torch")
    assert onnx.engine == "onnx" and ref.engine == "torch" and onnx.version == ref.version
    for name, pixels, is_hu, spacing in _ct_series():
        a = analyse_series(pixels, onnx, is_hu=is_hu, spacing=spacing)
        b = analyse_series(pixels, ref, is_hu=is_hu, spacing=spacing)
        assert np.abs(a.probs - b.probs).max() <= PROB_TOL, name
        assert a.patient.decision == b.patient.decision, name
        assert [s.score for s in a.slices] == pytest.approx([s.score for s in b.slices], abs=PROB_TOL), name


def test_ct_liver_classifier_agrees_and_its_cam_decomposes_the_logit():
    from lesiondx.ct_liver.classifier import center
    from lesiondx.ct_liver.pipeline import classifier_probabilities, load_bundle
    from lesiondx.ct_liver.recipe import aul_crops

    _need(MODELS / "ct-liver" / "classifier.onnx")
    onnx, ref = load_bundle("default", engine="onnx"), load_bundle("default", engine="torch")
    assert isinstance(onnx.classifier, OnnxNet) and onnx.version == ref.version and onnx.classes == ref.classes
    crops = aul_crops(EXAMPLES / "aul_liver_us_mini", onnx.cfg).crops  # real lesion crops (its training domain)
    assert np.abs(classifier_probabilities(onnx, crops) - classifier_probabilities(ref, crops)).max() <= PROB_TOL
    # CAM: its spatial mean + the head's bias is the unmasked copy's logit of each class (a true decomposition)
    model, meta = ref.classifier, onnx.classifier.meta
    cam = onnx.classifier.run(x=crops[:, None])["cam"]
    with torch.inference_mode():
        h = center(model.embed(torch.from_numpy(crops[:, None])), meta["cells"])
        logits = model.forward_features(h, copies=False)[0][:, : model.n_classes].numpy()
    np.testing.assert_allclose(cam.mean((2, 3)) + model.head.bias[: model.n_classes].detach().numpy(), logits, atol=CAM_TOL)


FEATURE_TOL = 1e-3  # out-of-distribution features (unbounded activations): abs diff ≤ 1e-3 × max(1, |value|)


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool(np.all(np.abs(a - b) <= tol * np.maximum(1.0, np.abs(b))))


def test_out_of_distribution_feature_networks_agree_on_real_images(us_bundles, monkeypatch):
    """The three feature extractors behind the input gate and the OOD scores give the torch features on
    ONNX Runtime: us-liver probe features (classifier.onnx ``features``), ct-covid encoder features
    (encoder_features.onnx), the modality probe's Lite0 features (models/gate/lite0_features.onnx)."""
    from lesiondx.ct_covid.model import load_model
    from lesiondx.ct_covid.ood import encoder_features
    from lesiondx.gate import modality
    from lesiondx.io import read_raster_array
    from lesiondx.us_liver.inference import frame_for
    from lesiondx.us_liver.ood import frame_features

    onnx_bundle, torch_bundle = us_bundles
    image = _us_images()[0]
    frame, _, _ = frame_for(torch_bundle, image)
    assert _close(frame_features(onnx_bundle, frame), frame_features(torch_bundle, frame), FEATURE_TOL)

    _need(MODELS / "ct-covid" / "encoder_features.onnx")
    slices = sorted((EXAMPLES / "covid_ct_md_mini" / "slices").glob("*.png"))[:2] or sorted(
        (EXAMPLES / "aul_liver_us_mini" / "images").glob("*.jpg"))[:2]
    grey = np.stack([np.asarray(read_raster_array(p)[:256, :256], np.float32) for p in slices])  # 2 real crops
    onnx_model, torch_model = load_model("default", engine="onnx"), load_model("default", engine="torch")
    assert _close(encoder_features(onnx_model, grey), encoder_features(torch_model, grey), FEATURE_TOL)

    _need(modality.FEATURES_ONNX)
    greys = [read_raster_array(image), grey[0]]
    on_onnx = modality.image_features(greys)
    monkeypatch.setattr(modality, "FEATURES_ONNX", MODELS / "gate" / "absent.onnx")
    assert _close(on_onnx, modality.image_features(greys), FEATURE_TOL)

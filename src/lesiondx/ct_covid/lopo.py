"""Leave-one-patient-out over the shared chest-CT series: candidate filter + patient-rule settings chosen on
the training patients only, then applied to the left-out patient.

Per fold (left-out patient L): the candidate filter (:mod:`.candidates`) is fitted on the candidates of the
MedSeg ``train`` slices (lesion = at least half of the candidate inside the infection mask) and of the other
series (every candidate of a negative patient and of a slice without ``infection`` is a non-lesion; candidates
on slices with ``infection`` are lesions), pooled over the probability thresholds of the grid. The rule
settings (probability threshold, lesion-size floor, k, filter threshold) are then chosen by this rule,
written down before any fold was run:

1. feasible = every training patient decided right (negative labels negative, pneumonia labels positive) and
   the MedSeg ``test`` lesion recall (slices with a counted lesion overlapping the mask) at least
   ``RECALL_KEEP`` × that of the unfiltered shipped rule (0.5, no filter): the filter must not buy
   specificity by dropping pneumonia lesions;
2. among feasible settings, the least strict: highest MedSeg recall, then smallest k, floor, probability
   threshold and filter threshold;
3. none feasible: fewest wrong training patients, then as 2.

The segmenter is the shipped one (trained on MedSeg ``train`` only, never on a series patient) or ``--model
RUNDIR``; it runs once per patient. Feature set: ``--features`` (``base``: the nine of the shipped filter;
``shape``: those plus solidity, axis ratio, 90th-percentile HU and edge step, declared in :mod:`.candidates` and
``benchmarks/ct_covid.md`` before their one LOPO run, with the rule under which they ship; that run, 2026-12-06,
got 2 of 4 left-out patients right, worse than ``base``'s 3 of 4, so ``base`` stays the default and the shipped
filter). ``python -m lesiondx.ct_covid.lopo --out runs/ct_covid/lopo`` writes ``lopo.json``/``lopo.csv``;
``--ship DIR`` also fits the filter on every patient and writes it with the chosen settings into ``DIR``.
``--cache FILE`` keeps the segmenter outputs with a stamp (checkpoint sha256, data folders): a cache of another
segmenter or data is refused, so each segmenter needs its own file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lesiondx.io import grey_to_hu
from lesiondx.runtime import file_sha256
from lesiondx.stats import auc_delong

from .candidates import BASE_FEATURES, FEATURES, CandidateFilter, fit_filter, part_features, select
from .config import CovidConfig
from .evaluation import read_patient_slices
from .model import LoadedModel, load_model
from .ood import model_inputs
from .pipeline import analyse_series, map_midlines, resize_stack, robust_max
from .rule import RuleSettings, lesion_parts, longest_run, part_centroids, patient_rule, quadrant_names

PROBS, FLOORS_MM, KS, FILTER_T = (0.5, 0.7, 0.9), (5.0, 10.0, 15.0), (3, 5), (0.0, 0.3, 0.5, 0.7, 0.9)
RECALL_KEEP = 0.9
FEATURE_SETS = {"base": BASE_FEATURES, "shape": FEATURES}
DATA = Path(__file__).resolve().parents[4] / "shared" / "data"


@dataclass(frozen=True)
class Series:
    """One patient's cached segmenter output: ``probs`` and model input ``hu`` ``(S, s, s)``; ``infection``
    slice labels; ``truth`` (1 = pneumonia label); ``px_per_mm2`` of the probability map; ``midlines``."""

    patient: str
    label: str
    truth: int
    probs: np.ndarray
    hu: np.ndarray
    infection: np.ndarray
    mm2_per_px: float
    midlines: tuple[float, float]
    min_area: int

    def floor_px(self, floor_mm: float) -> float:
        return max(float(self.min_area), np.pi / 4 * floor_mm**2 / self.mm2_per_px)

    def settings(self, prob: float, floor_mm: float, k: int, keep=None) -> RuleSettings:
        return RuleSettings(k=k, threshold=prob, min_area_px=self.floor_px(floor_mm), midlines=self.midlines, keep=keep)


@dataclass(frozen=True)
class Slices:
    """MedSeg slices: ``probs``, ``hu`` and infection ``masks`` ``(N, s, s)`` at model resolution."""

    probs: np.ndarray
    hu: np.ndarray
    masks: np.ndarray


def collect_series(model: LoadedModel, folders: list[Path]) -> list[Series]:
    """Run the (unfiltered) segmenter on every patient of the CT-MD-layout ``folders``."""
    cfg = model.config
    out = []
    for folder in folders:
        frame = pd.read_csv(folder / "labels.csv")
        frame["image"] = [str(folder / p) for p in frame["image"]]
        for patient, rows in frame.groupby("patient_id", sort=True):
            rows = rows.sort_values("slice_index")
            pixels, is_hu, spacing = read_patient_slices(rows)
            r = analyse_series(pixels, model, is_hu=is_hu, spacing=spacing, positions=list(range(len(rows))))
            size, c = cfg.input_size, r.crop
            grey = model_inputs(pixels, is_hu, r, model)
            mm2 = (c.height * spacing[0] / size) * (c.width * spacing[1] / size)
            midlines = map_midlines(r.shape, c, size)
            label = str(rows["label"].iloc[0])
            out.append(Series(str(patient), label, int(cfg.is_positive(label)), r.probs,
                              grey_to_hu(grey, (cfg.window_center, cfg.window_width)),
                              rows["infection"].to_numpy(int), float(mm2), midlines, cfg.min_area))
    return out


def collect_medseg(model: LoadedModel, folder: Path, split: str) -> Slices:
    """Segmenter output on the MedSeg rows of ``split`` (8-bit, chest-cropped: border air kept)."""
    from lesiondx.io import read_raster_array

    cfg = model.config
    frame = pd.read_csv(folder / "labels.csv")
    probs, hus, masks = [], [], []
    for _, row in frame[frame["split"] == split].iterrows():
        grey = read_raster_array(folder / row["image"], grey=True).astype(np.float32)[None]
        mask = read_raster_array(folder / row["infection_mask"], grey=True) > 0
        r = analyse_series(grey, model, is_hu=False)
        c = r.crop
        probs.append(r.probs[0])
        hus.append(grey_to_hu(model_inputs(grey, False, r, model)[0], (cfg.window_center, cfg.window_width)))
        masks.append(resize_stack(mask[None, c.y1:c.y2, c.x1:c.x2].astype(np.float32), (cfg.input_size,) * 2,
                                  nearest=True)[0] > 0.5)
    return Slices(np.stack(probs), np.stack(hus), np.stack(masks))


@dataclass(frozen=True)
class Candidates:
    """Counted candidates of one thresholding: ``features`` ``(n, len(FEATURES))``, ``slice`` index, image ``quadrant``,
    ``in_mask`` (fraction inside the infection mask, MedSeg) and the number of slices."""

    features: np.ndarray
    slice: np.ndarray
    quadrant: np.ndarray
    in_mask: np.ndarray
    n_slices: int


def candidates(probs: np.ndarray, hu: np.ndarray, settings: RuleSettings, masks: np.ndarray | None = None) -> Candidates:
    """The candidates the rule would count without a filter (probability and size floor only)."""
    parts, n, counted = lesion_parts(probs >= settings.threshold, replace(settings, keep=None))
    feats = part_features(parts, n, hu, probs)
    ids = np.flatnonzero(counted)
    slices, rows, cols = part_centroids(parts, n, ids)
    quad = np.array(quadrant_names(rows, cols, settings.midlines, parts.shape[1:]), dtype=object)
    in_mask = np.zeros(len(ids))
    if masks is not None:
        flat = parts.ravel()
        voxels = np.flatnonzero(flat)
        area = np.maximum(np.bincount(flat, minlength=n + 1), 1)
        in_mask = np.bincount(flat[voxels], weights=masks.ravel()[voxels].astype(float), minlength=n + 1)[ids] / area[ids]
    return Candidates(feats[ids], slices, quad, in_mask, parts.shape[0])


def run_length(c: Candidates, kept: np.ndarray) -> int:
    """Longest same-quadrant run of the kept candidates."""
    sets: list[set[str]] = [set() for _ in range(c.n_slices)]
    for s, q in zip(c.slice[kept], c.quadrant[kept]):
        sets[s].add(q)
    return longest_run(sets)[1]


def series_labels(s: Series, c: Candidates) -> np.ndarray:
    """Training label of a series candidate: 1 on an ``infection`` slice of a pneumonia patient, else 0."""
    return (s.truth * s.infection[c.slice]).astype(int)


def fit_fold(train: list[Series], medseg: Slices, min_area: int,
             names: tuple[str, ...] = BASE_FEATURES) -> CandidateFilter:
    """The filter of a fold on the features ``names``: MedSeg train candidates + the training patients'
    candidates, pooled over PROBS."""
    xs, ys = [], []
    for prob in PROBS:
        c = candidates(medseg.probs, medseg.hu, RuleSettings(threshold=prob, min_area_px=min_area), medseg.masks)
        xs.append(c.features)
        ys.append((c.in_mask >= 0.5).astype(int))
        for s in train:
            c = candidates(s.probs, s.hu, s.settings(prob, min(FLOORS_MM), 1))
            xs.append(c.features)
            ys.append(series_labels(s, c))
    meta = {"trained_on": ["MedSeg train"] + [s.patient for s in train], "n_candidates": int(sum(map(len, ys)))}
    return fit_filter(select(np.concatenate(xs), names), np.concatenate(ys), names=names, meta=meta)


def medseg_recall(c: Candidates, kept: np.ndarray) -> float:
    """Fraction of slices with a kept candidate at least half inside the infection mask."""
    hit = np.zeros(c.n_slices, dtype=bool)
    hit[c.slice[kept & (c.in_mask >= 0.5)]] = True
    return float(hit.mean())


def grid_table(patients: list[Series], test_medseg: Slices, filt: CandidateFilter, min_area: int) -> pd.DataFrame:
    """Every setting of the grid: each patient's run length and decision, and the MedSeg test recall."""
    rows = []
    med = {p: candidates(test_medseg.probs, test_medseg.hu, RuleSettings(threshold=p, min_area_px=min_area),
                         test_medseg.masks) for p in PROBS}
    med_p = {p: filt.probability(select(c.features, filt.names)) for p, c in med.items()}
    cands = {(s.patient, p, f): candidates(s.probs, s.hu, s.settings(p, f, 1))
             for s in patients for p in PROBS for f in FLOORS_MM}
    probs = {key: filt.probability(select(c.features, filt.names)) for key, c in cands.items()}
    for p, f, k, t in itertools.product(PROBS, FLOORS_MM, KS, FILTER_T):
        row = {"prob": p, "floor_mm": f, "k": k, "filter_t": t, "medseg_recall": medseg_recall(med[p], med_p[p] >= t)}
        wrong = 0
        for s in patients:
            length = run_length(cands[(s.patient, p, f)], probs[(s.patient, p, f)] >= t)
            row[f"run_{s.patient}"] = length
            wrong += int((length >= k) != bool(s.truth))
        row["wrong"] = wrong
        rows.append(row)
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame, baseline_recall: float) -> pd.Series:
    """The selection rule of the module docstring."""
    ok = (table["wrong"] == 0) & (table["medseg_recall"] >= RECALL_KEEP * baseline_recall)
    pool = table[ok] if ok.any() else table[table["wrong"] == table["wrong"].min()]
    order = pool.assign(neg_recall=-pool["medseg_recall"]).sort_values(["neg_recall", "k", "floor_mm", "prob", "filter_t"])
    best = order.iloc[0].drop("neg_recall").copy()
    best["feasible"] = bool(ok.any())
    return best


def apply(s: Series, filt: CandidateFilter | None, setting: pd.Series) -> dict:
    """Decision and score of one patient through :func:`patient_rule` (the pipeline's code path)."""
    keep = filt.with_threshold(float(setting["filter_t"])).keeper(s.hu, s.probs) if filt is not None and setting["filter_t"] > 0 else None
    d = patient_rule(s.probs, s.settings(float(setting["prob"]), float(setting["floor_mm"]), int(setting["k"]), keep))
    return {"decision": d.decision, "score": d.score, "run_length": d.run_length}


def slice_scores(s: Series, filt: CandidateFilter, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: the segmenter's robust maximum, and that times the best filter probability of the slice's
    candidates (probability ≥ 0.5, ≥ ``min_area`` px; 0 without a candidate)."""
    raw = np.array([robust_max(p, min_area) for p in s.probs])
    c = candidates(s.probs, s.hu, RuleSettings(threshold=0.5, min_area_px=min_area))
    best = np.zeros(len(raw))
    np.maximum.at(best, c.slice, filt.probability(select(c.features, filt.names)))
    return raw, raw * best


Outputs = tuple[list[Series], Slices, Slices]


def lopo(data: Outputs | dict[str, Outputs], cfg: CovidConfig, names: tuple[str, ...] = BASE_FEATURES) -> dict:
    """Every fold: filter (on the features ``names``), grid, chosen setting, the left-out patient's result (with
    and without the filter).

    ``data``: the segmenter outputs ``(patients, MedSeg train, MedSeg test)``, one for all folds or, per
    left-out patient, those of that fold's segmenter (fine-tuned without it)."""
    shipped = pd.Series({"prob": 0.5, "floor_mm": 10.0, "k": 3, "filter_t": 0.0})
    first = data if isinstance(data, tuple) else next(iter(data.values()))
    folds, slices, baselines = [], [], []
    for out_id in [s.patient for s in first[0]]:
        patients, train_medseg, test_medseg = data if isinstance(data, tuple) else data[out_id]
        base_c = candidates(test_medseg.probs, test_medseg.hu, RuleSettings(threshold=0.5, min_area_px=cfg.min_area),
                            test_medseg.masks)
        baseline = medseg_recall(base_c, np.ones(len(base_c.slice), bool))
        baselines.append(baseline)
        out = next(s for s in patients if s.patient == out_id)
        train = [s for s in patients if s is not out]
        filt = fit_fold(train, train_medseg, cfg.min_area, names)
        table = grid_table(train, test_medseg, filt, cfg.min_area)
        setting = choose(table, baseline)
        no_filter = choose(table[table["filter_t"] == 0], baseline)
        raw, filtered = slice_scores(out, filt, cfg.min_area)
        slices.append(pd.DataFrame({"patient": out.patient, "truth": out.infection, "raw": raw, "filtered": filtered}))
        folds.append({"left_out": out.patient, "label": out.label, "truth": out.truth,
                      "setting": setting.to_dict(), "result": apply(out, filt, setting),
                      "setting_rule_only": no_filter.to_dict(), "result_rule_only": apply(out, None, no_filter),
                      "result_shipped_rule": apply(out, None, shipped), "filter_coef": dict(zip(filt.names, filt.coef))})
    pooled = pd.concat(slices, ignore_index=True)
    aucs = {}
    for col in ("raw", "filtered"):
        a = auc_delong(pooled["truth"].to_numpy(), pooled[col].to_numpy())
        aucs[col] = {"auc": a.auc, "ci": [a.ci_low, a.ci_high], "n_pos": a.n_pos, "n_neg": a.n_neg}
    return {"features": list(names), "folds": folds, "slice_auc": aucs, "medseg_test_recall_shipped_rule": baselines, "pooled": pooled}


def cache_stamp(model: Path, fold_models: Path | None, series: list[Path], medseg: Path) -> dict:
    """What a cache of segmenter outputs depends on: checkpoint sha256(s) and the data folders."""
    folds = ({d.name: file_sha256(d / "model.pt") for d in sorted(fold_models.iterdir()) if (d / "model.pt").is_file()}
             if fold_models else None)
    return {"model": file_sha256(model), "fold_models": folds, "series": [str(Path(p).resolve()) for p in series],
            "medseg": str(Path(medseg).resolve())}


def read_cache(path: Path, stamp: dict, shipped: bool) -> Outputs | dict[str, Outputs] | None:
    """The cached outputs at ``path`` (None when absent); ``ValueError`` when they were written for another
    segmenter or data. An unstamped cache (written before stamps, by the shipped segmenter) is read only when
    ``shipped``."""
    if not path.is_file():
        return None
    body = pickle.loads(path.read_bytes())
    if isinstance(body, dict) and "stamp" in body:
        if body["stamp"] != stamp:
            differ = sorted(k for k in stamp if body["stamp"].get(k) != stamp[k])
            raise ValueError(f"{path}: cache written for another segmenter or data (differs in {differ}); "
                             "give a new --cache file")
        return body["outputs"]
    if not shipped:
        raise ValueError(f"{path}: unstamped cache of the shipped segmenter; give a new --cache file with --model")
    return body


def write_cache(path: Path, stamp: dict, outputs: Outputs | dict[str, Outputs]) -> None:
    """Pickle ``outputs`` with their ``stamp`` (see :func:`read_cache`)."""
    path.write_bytes(pickle.dumps({"stamp": stamp, "outputs": outputs}))


def list_filter_data(model_dir: Path, series: list[Path], medseg: Path) -> None:
    """Add what the shipped filter and settings were fitted on to ``model_dir``'s training_files.csv (evaluate
    reports overlap with it): every slice of the series folders, MedSeg train (filter) and test (settings)."""
    from lesiondx.data import image_roles, load_manifest, write_training_files

    for folder in series:
        manifest = load_manifest(folder)
        write_training_files(model_dir, image_roles(manifest.frame, "candidate filter; rule settings"),
                             root=manifest.root, append=True)
    manifest = load_manifest(medseg)
    for split, role in (("train", "candidate filter"), ("test", "rule settings (MedSeg test lesion recall)")):
        rows = manifest.frame[manifest.frame["split"].astype(str) == split]
        write_training_files(model_dir, image_roles(rows, role), root=manifest.root, append=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="segmenter: 'default' (shipped) or a run directory")
    ap.add_argument("--series", nargs="+", type=Path,
                    default=[DATA / "covid_ct_md_sample", DATA / "chest_ct_lung_cancer"])
    ap.add_argument("--medseg", type=Path, default=DATA / "covid_medseg_semiseg")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fold-models", type=Path, help="folder with one model folder per left-out patient")
    ap.add_argument("--cache", type=Path, help="pickle of the segmenter outputs (written when missing)")
    ap.add_argument("--ship", type=Path, help="fit on every patient and write the filter + settings here")
    ap.add_argument("--features", choices=sorted(FEATURE_SETS), default="base",
                    help="candidate features of the filter (base: the shipped nine; shape: + solidity, axis ratio, "
                         "90th-percentile HU, edge step)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    model = load_model(a.model)
    model = replace(model, candidate_filter=None)  # the unfiltered segmenter output
    cfg = model.config
    def outputs(m: LoadedModel) -> Outputs:
        return collect_series(m, a.series), collect_medseg(m, a.medseg, "train"), collect_medseg(m, a.medseg, "test")

    stamp = cache_stamp(model.path, a.fold_models, a.series, a.medseg)
    cached = read_cache(a.cache, stamp, str(a.model) == "default") if a.cache else None
    if cached is None:
        if a.fold_models:
            cached = {d.name: outputs(replace(load_model(d), candidate_filter=None))
                      for d in sorted(a.fold_models.iterdir()) if (d / "model.pt").is_file()}
        else:
            cached = outputs(model)
        if a.cache:
            write_cache(a.cache, stamp, cached)
    names = FEATURE_SETS[a.features]
    result = lopo(cached, cfg, names)
    result.pop("pooled").to_csv(a.out / "lopo_slices.csv", index=False)
    if a.ship:
        patients, train_m, test_m = cached if isinstance(cached, tuple) else outputs(model)
        filt = fit_fold(patients, train_m, cfg.min_area, names)
        table = grid_table(patients, test_m, filt, cfg.min_area)
        table.to_csv(a.out / "final_grid.csv", index=False)
        base_c = candidates(test_m.probs, test_m.hu, RuleSettings(threshold=0.5, min_area_px=cfg.min_area), test_m.masks)
        setting = choose(table, medseg_recall(base_c, np.ones(len(base_c.slice), bool)))
        filt = filt.with_threshold(float(setting["filter_t"]))
        filt.to_json(a.ship / "candidate_filter.json")
        list_filter_data(a.ship, a.series, a.medseg)
        result["final"] = {"setting": setting.to_dict(), "coef": dict(zip(filt.names, filt.coef)),
                           "in_sample": {s.patient: apply(s, filt, setting) for s in patients}}
    (a.out / "lopo.json").write_text(json.dumps(result, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    print(json.dumps({k: v for k, v in result.items() if k != "folds"}, indent=2, default=str))
    for f in result["folds"]:
        print(f["left_out"], f["label"], f["setting"], f["result"], "| rule only:", f["result_rule_only"],
              "| shipped rule:", f["result_shipped_rule"])


if __name__ == "__main__":
    main()

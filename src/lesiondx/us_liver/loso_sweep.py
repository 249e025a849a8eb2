"""Leave-one-scanner-out (LOSO) comparison of probe recipes declared in advance (issue 16, item 3).

A sweep file (YAML) lists ``common`` overrides, ``families`` (config overrides of the base config: each is one feature cache) and
``candidates`` (name, family, views taken from that family's cache; ``lbc: true`` adds Model_LBC's explicit
relative-size and depth factors by ``lbc_loso``, or with ``factors: appearance`` the liver-relative sonographic
signs of ``appearance``; ``features: appearance`` scores a head on those signs alone instead of the family's
trunk features; ``compare: NAME`` adds paired DeLong tests against an earlier candidate). Every candidate is scored by the same
LOSO folds as ``--leave-one-scanner-out`` (heads never see the left-out group; C on an inner grouped fold of
the training rows), beside the size-and-scanner baseline trained on the same rows. Selection, written before
any result: the candidate with the best mean AUC over the large groups; and, because that looks at the test
groups, a nested figure: for each large group the candidate with the best mean over the *other* large
groups, scored on that group.

Usage: ``python -m lesiondx.us_liver.loso_sweep --data DIR --out DIR --config base.yaml --sweep sweep.yaml``
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from lesiondx.data import grouped_kfold

from . import domains
from .benchmark import auc_entry, classifier_rows
from lesiondx.data import load_manifest
from lesiondx.stats import delong_paired_test

from . import appearance
from .config import UsLiverConfig, load_us_config
from .lbc import MASK_FACTORS, fit_lbc, with_logit
from .probe import ProbeCache, cached_probe_features, cross_validate_probe, pooled_trunk, probe_cache_name


def view_subset(cache: ProbeCache, family_views: str, views: str) -> ProbeCache:
    """The cache restricted to ``views`` (each a block of equal width, in ``family_views`` order)."""
    if set(views) - set(family_views):
        raise ValueError(f"views {views!r} are not all in the family's {family_views!r}")
    width = cache.features.shape[-1] // len(family_views)
    cols = [torch.arange(family_views.index(v) * width, (family_views.index(v) + 1) * width) for v in views]
    return ProbeCache(cache.table, cache.features[..., torch.cat(cols)])


class OnnxTrunk:
    """A frozen pooled trunk run by ONNX Runtime (≈ 3× torch eager on this CPU): ``trunk(grey (B, H, W))`` →
    ``(B, D)`` torch float32, like the torch module it was exported from (``size``² crops; parity ≤ 1e-4
    checked at export)."""

    def __init__(self, module: torch.nn.Module, path: Path, size: int, threads: int = 1) -> None:
        import onnxruntime as ort

        from lesiondx.models.export import export_onnx

        self.features = module.features
        example = torch.rand(2, size, size) * 255
        export_onnx(_Pooled(module), [example], path, inputs=["grey"], outputs=["features"], meta={}, tolerance=1e-4)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, grey: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"grey": grey.numpy().astype(np.float32)})[0])


class _Pooled(torch.nn.Module):
    """``forward(grey)`` only (the exporter passes no keyword arguments)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        return self.module(grey)


def sweep_cache(cfg: UsLiverConfig, data: Path, out: Path) -> tuple[pd.DataFrame, ProbeCache]:
    """Like ``benchmark._probe_cache`` (same file name, same crops) with the trunk on ONNX Runtime."""
    from .task import data_hash

    frame = load_manifest(data).frame
    rows = classifier_rows(frame)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out
    path = cache_dir / probe_cache_name(cfg, data_hash(data, frame))
    if path.is_file():
        return frame, cached_probe_features(rows, cfg, None, path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    trunk = OnnxTrunk(pooled_trunk(cfg.levels, cfg.backbone), cache_dir / f"trunk_{cfg.backbone}.onnx", cfg.crop_size,
                      torch.get_num_threads())
    return frame, cached_probe_features(rows, cfg, trunk, path)


def lbc_loso(cache: ProbeCache, fold_name: np.ndarray, cfg: UsLiverConfig, loso: np.ndarray,
             factors: tuple[str, ...] = MASK_FACTORS) -> np.ndarray:
    """Model_LBC out of domain: for each LOSO fold, the fusion (``fit_lbc``: probe logit + mask factors, screen
    p < 0.1) is fit on the training rows' *inner leave-one-scanner-out* probe scores (heads that never saw
    that row's group, as the left-out group is scored) and applied to the left-out rows' LOSO scores."""
    table = cache.table
    out = np.full(len(table), np.nan)
    for name in sorted(set(fold_name)):
        test = fold_name == name
        train_idx = np.flatnonzero(~test)
        sub = ProbeCache(table.iloc[train_idx].reset_index(drop=True), cache.features[train_idx])
        inner, _ = domains.leave_one_scanner_out(sub, fold_name[train_idx], cfg)
        train = sub.table.assign(score=inner)
        fit = fit_lbc(train, "score", list(factors))
        out[test] = fit.model.predict(with_logit(table[test].assign(score=loso[test]), "score"))
    return out


def appearance_inputs(rows: pd.DataFrame, out: Path) -> pd.DataFrame:
    """``appearance.appearance_table`` of ``rows``, stored at / reused from ``out/appearance.csv`` (same image ids)."""
    path = out / "appearance.csv"
    if path.is_file():
        table = pd.read_csv(path)
        if list(table["image_id"]) == list(rows["image_id"]):
            return table
    table = appearance.appearance_table(rows)
    table.to_csv(path, index=False)
    return table


def appearance_cache(cache: ProbeCache, signs: pd.DataFrame) -> ProbeCache:
    """``cache``'s rows with the sign columns joined to the table and the ``appearance.INPUTS`` as the only
    features (one copy: ``(N, 1, F)``), so the probe heads, C rule and LOSO folds apply unchanged."""
    table = cache.table.merge(signs, on="image_id", how="left", validate="one_to_one")
    x = table[list(appearance.INPUTS)].to_numpy(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("appearance signs missing or not finite for some rows")
    return ProbeCache(table, torch.from_numpy(x)[:, None, :])


def paired_entry(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired DeLong ``a`` − ``b`` on the same rows: difference, its 95 % CI and p."""
    t = delong_paired_test(y, a, b)
    return {"diff": t.diff, "diff_ci": [t.diff_ci_low, t.diff_ci_high], "p": t.p}


def univariate(table: pd.DataFrame, columns: tuple[str, ...], fold_name: np.ndarray) -> dict[str, dict]:
    """AUC (DeLong 95 % CI, higher value = malignant) of each column alone in every LOSO fold and all rows,
    with its Spearman correlation to log lesion area (does the sign carry size?)."""
    y = table["y"].to_numpy()
    area = np.log1p(table["lesion_area"].to_numpy(float))
    out: dict[str, dict] = {}
    for col in columns:
        x = table[col].to_numpy(float)
        out[col] = {g: auc_entry(y[fold_name == g], x[fold_name == g]) for g in sorted(set(fold_name))
                    if domains.evaluable(y[fold_name == g])}
        out[col]["all"] = auc_entry(y, x)
        out[col]["spearman_log_area"] = float(pd.Series(x).corr(pd.Series(area), method="spearman"))
    return out


def nested_choice(per_group: dict[str, dict[str, float]]) -> dict[str, str]:
    """For each group, the candidate with the best mean AUC over the other groups (``per_group[cand][group]``)."""
    groups = sorted(next(iter(per_group.values())))
    out = {}
    for g in groups:
        others = [h for h in groups if h != g]
        out[g] = max(per_group, key=lambda c: (np.mean([per_group[c][h] for h in others]), -list(per_group).index(c)))
    return out


def run_sweep(base: Path | None, sweep: dict, data: Path, out: Path, pooled: tuple[str, ...] = ()) -> dict:
    """Every candidate's LOSO (families: overrides of the ``base`` config file) scores (``loso_sweep.csv``) and figures (``loso_sweep.json``)."""
    common = sweep.get("common", {})
    families = {name: load_us_config(base, **(common | over)) for name, over in sweep["families"].items()}
    frame = None
    caches: dict[str, ProbeCache] = {}
    scores = pd.DataFrame()
    results: dict[str, dict] = {}
    for cand in sweep["candidates"]:
        name, fam = cand["name"], cand["family"]
        cfg = families[fam]
        if fam not in caches:
            frame, caches[fam] = sweep_cache(cfg, data, out)
        assert frame is not None
        cache = view_subset(caches[fam], cfg.views, cand.get("views", cfg.views))
        if "appearance" in (cand.get("features"), cand.get("factors")):
            signs = appearance_inputs(cache.table, out)
            cache = appearance_cache(cache, signs) if cand.get("features") == "appearance" else \
                ProbeCache(cache.table.merge(signs, on="image_id", how="left", validate="one_to_one"), cache.features)
        table = cache.table
        if scores.empty:
            groups = domains.scanner_groups(frame).set_axis(frame["image_id"])
            fold_name = domains.loso_folds(pd.Series(table["image_id"].map(groups).to_numpy()), table["label"]).to_numpy()
            y = table["y"].to_numpy()
            scores = table[["image_id", "label", "y"]].assign(loso_fold=fold_name,
                                                              baseline=domains.size_scanner_loso(table, fold_name))
            area = np.log1p(table["lesion_area"].to_numpy(float))
            large = sorted(set(fold_name) - {domains.OTHER}, key=lambda n: -(fold_name == n).sum())
        model, chosen = domains.leave_one_scanner_out(cache, fold_name, cfg)
        if cand.get("lbc"):  # Model_LBC: + explicit mask factors (relative size, depth), fused out of domain
            factors = appearance.INPUTS if cand.get("factors") == "appearance" else MASK_FACTORS
            model = lbc_loso(cache, fold_name, cfg, model, factors)
        scores[name] = model
        res = {"family": fam, "views": cand.get("views", cfg.views), "chosen_c": chosen, "per_group": {}}
        if cand.get("features") == "appearance":
            res["features"] = "appearance"
            res["univariate"] = univariate(table, appearance.INPUTS, fold_name)
        if cand.get("compare"):
            ref = scores[cand["compare"]].to_numpy()
            res["vs"] = {"ref": cand["compare"], "all": paired_entry(y, model, ref),
                         **{g: paired_entry(y[fold_name == g], model[fold_name == g], ref[fold_name == g])
                            for g in [*large, domains.OTHER] if domains.evaluable(y[fold_name == g])}}
        for g in large:
            idx = fold_name == g
            res["per_group"][g] = domains.group_result(g, y[idx], model[idx], scores["baseline"].to_numpy()[idx], area[idx]).__dict__
        res["mean_auc_large"] = float(np.mean([r["auc"] for r in res["per_group"].values()]))
        other = fold_name == domains.OTHER
        res["other"] = auc_entry(y[other], model[other]) if domains.evaluable(y[other]) else None
        res["all"] = auc_entry(y, model)
        res["all_vs_baseline"] = paired_entry(y, model, scores["baseline"].to_numpy())
        if name in pooled and not cand.get("lbc"):  # (a fused candidate's pooled CV is not defined here)
            fold_of = dict(zip(frame["image_id"], grouped_kfold(frame, cfg.folds, seed=cfg.seed)))
            oof, _ = cross_validate_probe(cache, table["image_id"].map(fold_of).to_numpy(), replace(cfg, views=res["views"]))
            res["pooled_cv"] = auc_entry(y, oof)
            scores[f"{name}_pooled_cv"] = oof
        results[name] = res
        print(name, {g: round(r["auc"], 3) for g, r in res["per_group"].items()}, round(res["mean_auc_large"], 3), flush=True)
        scores.to_csv(out / "loso_sweep.csv", index=False)
        (out / "loso_sweep.json").write_text(json.dumps(results, indent=2, default=float))
    per = {c: {g: r["per_group"][g]["auc"] for g in r["per_group"]} for c, r in results.items()}
    best = max(results, key=lambda c: (results[c]["mean_auc_large"], -list(results).index(c)))
    nested = nested_choice(per)
    summary = {"candidates": results, "best_by_mean": best,
               "nested": {g: {"chosen": c, "auc": per[c][g]} for g, c in nested.items()},
               "nested_mean": float(np.mean([per[c][g] for g, c in nested.items()]))}
    (out / "loso_sweep.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, help="base config (default: the package defaults)")
    parser.add_argument("--sweep", type=Path, required=True, help="YAML with families and candidates")
    parser.add_argument("--pooled", default="", help="comma-separated candidates that also get the pooled 5-fold CV")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    sweep = yaml.safe_load(args.sweep.read_text())
    summary = run_sweep(args.config, sweep, args.data, args.out, tuple(filter(None, args.pooled.split(","))))
    print(json.dumps({"best_by_mean": summary["best_by_mean"], "nested": summary["nested"],
                      "nested_mean": summary["nested_mean"]}, indent=1))


if __name__ == "__main__":
    main()

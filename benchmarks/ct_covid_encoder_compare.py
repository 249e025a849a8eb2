"""Paired comparison of two ct-covid segmenters from their ``lesiondx evaluate`` folders (issue 16 item 1).

MedSeg ``test``: per-slice Dice of B minus A, mean with a paired percentile bootstrap 95 % CI over slices.
CT-MD: slice AUC of each (DeLong) and the paired DeLong test of B minus A on the same slices.

    python benchmarks/ct_covid_encoder_compare.py --medseg EVAL_A EVAL_B --ctmd EVAL_A EVAL_B [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lesiondx.stats import auc_delong, bootstrap_statistic, delong_paired_test


def _paired(a: Path, b: Path, name: str, key: str = "image_id") -> pd.DataFrame:
    frames = [pd.read_csv(Path(d) / name) for d in (a, b)]
    merged = frames[0].merge(frames[1], on=key, suffixes=("_a", "_b"))
    if len(merged) != len(frames[0]) or len(merged) != len(frames[1]):
        raise ValueError(f"{a / name} and {b / name}: not the same {key}s")
    return merged


def compare(medseg: tuple[Path, Path], ctmd: tuple[Path, Path], n_boot: int = 2000) -> dict:
    """Dice (MedSeg) and slice AUC (CT-MD) of A and B, with paired differences B − A."""
    seg = _paired(*medseg, "segmentation.csv")
    out: dict = {"medseg_test": {"n_slices": len(seg)}}
    for col in ("dice", "dice_lung"):
        a, b = seg[f"{col}_a"].to_numpy(float), seg[f"{col}_b"].to_numpy(float)
        ci = bootstrap_statistic(lambda idx, d=b - a: float(np.mean(d[idx])), len(a), n_boot=n_boot)
        ca = bootstrap_statistic(lambda idx, v=a: float(np.mean(v[idx])), len(a), n_boot=n_boot)
        cb = bootstrap_statistic(lambda idx, v=b: float(np.mean(v[idx])), len(b), n_boot=n_boot)
        out["medseg_test"][col] = {"a": [a.mean(), ca.ci_low, ca.ci_high], "b": [b.mean(), cb.ci_low, cb.ci_high],
                                   "b_minus_a": [float((b - a).mean()), ci.ci_low, ci.ci_high]}
    sl = _paired(*ctmd, "predictions.csv")
    if not (sl["truth_a"] == sl["truth_b"]).all():
        raise ValueError(f"{ctmd[0]} and {ctmd[1]}: slice truths differ")
    y = sl["truth_a"].to_numpy(int)
    ra, rb = auc_delong(y, sl["score_a"]), auc_delong(y, sl["score_b"])
    p = delong_paired_test(y, sl["score_b"], sl["score_a"])
    out["ctmd_slices"] = {"n": len(sl), "n_pos": int(y.sum()), "auc_a": [ra.auc, ra.ci_low, ra.ci_high],
                          "auc_b": [rb.auc, rb.ci_low, rb.ci_high],
                          "b_minus_a": [p.diff, p.diff_ci_low, p.diff_ci_high], "p": p.p}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--medseg", nargs=2, type=Path, required=True, metavar=("EVAL_A", "EVAL_B"))
    ap.add_argument("--ctmd", nargs=2, type=Path, required=True, metavar=("EVAL_A", "EVAL_B"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    result = json.dumps(compare(tuple(a.medseg), tuple(a.ctmd)), indent=2, default=float)
    if a.json:
        a.json.write_text(result)
    print(result)


if __name__ == "__main__":
    main()

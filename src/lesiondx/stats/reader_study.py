"""Analysis of a reader-study table (one row per reader x case x mode).

Expected columns: ``reader, case_id, truth, answer, seconds, with_ai`` (0/1); ``confidence``
is optional and unused here. A read is correct when ``answer == truth`` (compared as text).

Outputs:
* accuracy per reader and mode with Wilson CIs;
* Cohen kappa for each pair of readers and Fleiss kappa over all readers, per mode
  (on the cases every reader in that mode answered);
* McNemar test of correctness without vs with AI, per reader (paired by case) and pooled
  over readers (pooling ignores the clustering by reader; read it as descriptive);
* reading time per mode and time saved (without - with AI, paired by reader and case),
  mean with t CI and median with bootstrap CI, in the unit of ``seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from .binary import wilson_ci
from .readers import cohen_kappa, fleiss_kappa, mcnemar_test, summarize_times

REQUIRED = ("reader", "case_id", "truth", "answer", "seconds", "with_ai")
MODES = {0: "without_ai", 1: "with_ai"}


@dataclass(frozen=True)
class ReaderStudyResult:
    """Tables of a reader study; see the module docstring for their meaning."""

    accuracy: pd.DataFrame
    kappa: pd.DataFrame
    mcnemar: pd.DataFrame
    times: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all tables (NaN become None)."""
        return {k: _records(getattr(self, k)) for k in ("accuracy", "kappa", "mcnemar", "times")}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in df.to_dict("records")
    ]


def load_reader_table(df: pd.DataFrame) -> pd.DataFrame:
    """Validate columns and types; adds ``mode`` ("with_ai"/"without_ai") and ``correct``."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"reader table lacks column(s) {missing}; needs {list(REQUIRED)}")
    out = df.copy()
    ai = pd.to_numeric(out["with_ai"], errors="coerce")
    if ai.isna().any() or not ai.isin([0, 1]).all():
        raise ValueError("column 'with_ai' must hold only 0 and 1")
    secs = pd.to_numeric(out["seconds"], errors="coerce")
    if secs.isna().any():
        raise ValueError(f"column 'seconds' has {int(secs.isna().sum())} missing or non-numeric value(s)")
    out["seconds"] = secs.astype(float)
    out["mode"] = ai.astype(int).map(MODES)
    out["correct"] = out["truth"].astype(str).str.strip() == out["answer"].astype(str).str.strip()
    dup = out.duplicated(["reader", "case_id", "mode"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (reader, case_id, with_ai) row(s)")
    return out


def _accuracy(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (reader, mode), g in t.groupby(["reader", "mode"], sort=True):
        ci = wilson_ci(int(g["correct"].sum()), len(g))
        rows.append(
            dict(
                reader=reader,
                mode=mode,
                n=ci.n,
                correct=ci.k,
                accuracy=ci.estimate,
                ci_low=ci.ci_low,
                ci_high=ci.ci_high,
            )
        )
    return pd.DataFrame(rows)


def _kappas(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for mode, g in t.groupby("mode", sort=True):
        wide = g.pivot(index="case_id", columns="reader", values="answer").astype(object)
        for r1, r2 in combinations(wide.columns, 2):
            both = wide[[r1, r2]].dropna()
            if len(both) < 2:
                continue
            try:
                k = cohen_kappa(both[r1], both[r2])
            except ValueError:
                continue
            rows.append(
                dict(
                    mode=mode,
                    readers=f"{r1} vs {r2}",
                    method="cohen",
                    n_cases=k.n,
                    kappa=k.kappa,
                    ci_low=k.ci_low,
                    ci_high=k.ci_high,
                )
            )
        full = wide.dropna()
        if wide.shape[1] >= 3 and len(full) >= 2:
            try:
                fk = fleiss_kappa(full.to_numpy())
            except ValueError:
                fk = float("nan")
            rows.append(
                dict(
                    mode=mode,
                    readers="all",
                    method="fleiss",
                    n_cases=len(full),
                    kappa=fk,
                    ci_low=float("nan"),
                    ci_high=float("nan"),
                )
            )
    return pd.DataFrame(rows, columns=["mode", "readers", "method", "n_cases", "kappa", "ci_low", "ci_high"])


def _paired(t: pd.DataFrame, value: str) -> pd.DataFrame:
    wide = t.pivot_table(index=["reader", "case_id"], columns="mode", values=value, aggfunc="first")
    if not {"with_ai", "without_ai"} <= set(wide.columns):
        return pd.DataFrame(columns=["reader", "case_id", "without_ai", "with_ai"])
    return wide[["without_ai", "with_ai"]].dropna().reset_index()


def _mcnemar(t: pd.DataFrame) -> pd.DataFrame:
    pairs = _paired(t.assign(correct=t["correct"].astype(float)), "correct")
    rows = []
    groups = [(r, g) for r, g in pairs.groupby("reader", sort=True)] + [("all (pooled)", pairs)]
    for reader, g in groups:
        if len(g) == 0:
            continue
        res = mcnemar_test(g["without_ai"].to_numpy(), g["with_ai"].to_numpy())
        rows.append(
            dict(
                reader=reader,
                n_pairs=len(g),
                acc_without_ai=float(g["without_ai"].mean()),
                acc_with_ai=float(g["with_ai"].mean()),
                only_without_correct=res.b,
                only_with_correct=res.c,
                statistic=res.statistic,
                p=res.p,
                method=res.method,
            )
        )
    return pd.DataFrame(rows)


def _times(t: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for mode, g in t.groupby("mode", sort=True):
        if len(g) >= 2:
            rows.append(
                dict(what=f"seconds {mode}", **summarize_times(g["seconds"], n_boot=n_boot, seed=seed).__dict__)
            )
    pairs = _paired(t, "seconds")
    if len(pairs) >= 2:
        saved = pairs["without_ai"] - pairs["with_ai"]
        rows.append(dict(what="seconds saved with AI", **summarize_times(saved, n_boot=n_boot, seed=seed).__dict__))
    return pd.DataFrame(rows)


def analyse_reader_study(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> ReaderStudyResult:
    """Run every reader-study analysis on a table with the columns in ``REQUIRED``."""
    t = load_reader_table(df)
    return ReaderStudyResult(
        accuracy=_accuracy(t), kappa=_kappas(t), mcnemar=_mcnemar(t), times=_times(t, n_boot, seed)
    )

"""Reader-study summary for the ``/reader`` page: per-reader accuracy and time, the model as an extra rater.

Reuses :func:`lesiondx.stats.reader_study.analyse_reader_study` (accuracy with Wilson CIs, κ between readers,
McNemar without vs with AI per reader and pooled, reading times) and adds what the seed papers report beside
it: the model's accuracy on the same cases, Cohen κ between the model and each reader (per arm), a
discordance table (cases where the model and a reader disagree) and a Mann–Whitney test of reading time
without vs with AI (all reads, unpaired, seconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lesiondx.stats.binary import wilson_ci
from lesiondx.stats.reader_study import analyse_reader_study, load_reader_table
from lesiondx.stats.readers import cohen_kappa, mann_whitney

MODEL = "AI model"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict("records")]


def model_answer(label: str | None, choices: list[str]) -> str | None:
    """The model's label as one of the answer choices (case-insensitive), else ``None`` (not comparable)."""
    if not label:
        return None
    return next((c for c in choices if c.strip().lower() == str(label).strip().lower()), None)


def summarise(rows: list[dict[str, Any]], model: dict[str, str | None], truths: dict[str, str],
              n_boot: int = 200) -> dict[str, Any]:
    """Tables of the reader study; ``rows`` as the export CSV, ``model`` case → model answer (or None)."""
    out: dict[str, Any] = {"n_reads": len(rows), "readers": [], "accuracy": [], "kappa": [], "mcnemar": [],
                           "times": [], "model": None, "model_kappa": [], "discordance": [], "mann_whitney": None}
    scored = {c: a for c, a in model.items() if a is not None and c in truths}
    if scored:
        ci = wilson_ci(sum(scored[c] == truths[c] for c in scored), len(scored))
        out["model"] = {"n": ci.n, "correct": ci.k, "accuracy": ci.estimate, "ci_low": ci.ci_low, "ci_high": ci.ci_high,
                        "not_comparable": len(model) - len(scored)}
    if not rows:
        return out
    table = load_reader_table(pd.DataFrame(rows))
    result = analyse_reader_study(pd.DataFrame(rows), n_boot=n_boot)
    out.update({k: _records(getattr(result, k)) for k in ("accuracy", "kappa", "mcnemar", "times")})
    per = table.groupby(["reader", "mode"]).agg(n=("case_id", "size"), accuracy=("correct", "mean"),
                                                median_seconds=("seconds", "median"), total_seconds=("seconds", "sum"))
    out["readers"] = _records(per.reset_index())
    for (reader, mode), g in table.groupby(["reader", "mode"], sort=True):
        pairs = [(scored[c], a) for c, a in zip(g["case_id"], g["answer"]) if c in scored]
        if len(pairs) < 2:
            continue
        try:
            k = cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs])
        except ValueError:
            continue
        out["model_kappa"].append({"reader": reader, "mode": mode, "n_cases": k.n, "kappa": _clean(k.kappa),
                                   "ci_low": _clean(k.ci_low), "ci_high": _clean(k.ci_high),
                                   "agreement": _clean(k.observed_agreement)})
    wide = table.pivot_table(index="case_id", columns=["reader", "mode"], values="answer", aggfunc="first")
    for case_id, answers in wide.iterrows():
        reads = {f"{r} ({m.replace('_', ' ')})": a for (r, m), a in answers.items() if isinstance(a, str)}
        ai = scored.get(case_id)
        if ai is not None and any(a != ai for a in reads.values()):
            out["discordance"].append({"case_id": case_id, "truth": truths.get(case_id), "model": ai, "reads": reads,
                                       "model_correct": ai == truths.get(case_id)})
    without, with_ai = (table.loc[table["mode"] == m, "seconds"].to_numpy() for m in ("without_ai", "with_ai"))
    if len(without) and len(with_ai):
        mw = mann_whitney(without, with_ai)
        out["mann_whitney"] = {"what": "reading time (s), without vs with AI, all reads", "u": mw.u, "p": mw.p,
                               "n_without": mw.n1, "n_with": mw.n2,
                               "median_without": float(np.median(without)), "median_with": float(np.median(with_ai))}
    return out

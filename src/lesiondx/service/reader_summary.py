"""Reader-study summary for the ``/reader`` page: per-reader accuracy and time, the model as an extra rater.

Reuses :func:`lesiondx.stats.reader_study.analyse_reader_study` (accuracy with Wilson CIs, κ between readers,
McNemar without vs with AI per reader and pooled, reading times) and adds what the seed papers report beside
it: the model's accuracy on the same cases, Cohen κ between the model and each reader (per arm), a
discordance table (cases where the model and a reader disagree), a Mann–Whitney test of reading time
without vs with AI (all reads, unpaired, seconds) and, per task with a positive class, each reader's AUC beside
the model's on the same cases (DeLong 95 % CIs, paired DeLong difference): the reader's score is the answer and
its confidence on one 1-10 scale (positive answer: 5 + confidence, other answers: 6 - confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.stats.binary import wilson_ci
from lesiondx.stats.delong import auc_delong, delong_paired_test
from lesiondx.stats.reader_study import analyse_reader_study, load_reader_table
from lesiondx.stats.readers import cohen_kappa, mann_whitney

MODEL = "AI model"
FEW = 10  # cases per class under which the DeLong CI is flagged as unreliable
RATING = "answer and confidence on a 1-10 scale (positive answer: 5 + confidence, other answers: 6 - confidence)"


@dataclass(frozen=True)
class CaseScore:
    """What the AUC needs of a case: its task, the answer choice that is the task's positive class, and the
    model's probability of that class (None when the model gave none)."""

    task: str
    positive: str
    probability: float | None


def reader_rating(answer: str, confidence: int, positive: str) -> int:
    """A read on one ordinal scale, 1 (certain negative) .. 10 (certain positive)."""
    return 5 + int(confidence) if answer == positive else 6 - int(confidence)


def _auc_row(key: dict[str, Any], truth: np.ndarray, reader: np.ndarray, model: np.ndarray) -> dict[str, Any]:
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    row: dict[str, Any] = {**key, "n_cases": int(truth.size), "n_pos": n_pos, "n_neg": n_neg}
    if n_pos < 2 or n_neg < 2:
        return {**row, "note": "needs at least 2 cases of each class"}
    r, m, d = auc_delong(truth, reader), auc_delong(truth, model), delong_paired_test(truth, reader, model)
    return {**row, "reader_auc": r.auc, "reader_ci_low": r.ci_low, "reader_ci_high": r.ci_high, "model_auc": m.auc,
            "model_ci_low": m.ci_low, "model_ci_high": m.ci_high, "diff": d.diff, "diff_ci_low": d.diff_ci_low,
            "diff_ci_high": d.diff_ci_high, "p": _clean(d.p),
            "note": None if min(n_pos, n_neg) >= FEW else f"fewer than {FEW} cases of a class: the DeLong CI is unreliable "
                                                           "(zero width when the classes separate perfectly)"}


def auc_table(rows: list[dict[str, Any]], scores: dict[str, CaseScore], truths: dict[str, str]) -> list[dict[str, Any]]:
    """Per task, reader and mode: the reader's AUC and the model's on the same cases, with the paired difference
    (reader - model). Cases without a model probability or of another task are left out."""
    out = []
    df = pd.DataFrame(rows)
    if df.empty:
        return out
    df = df[df["case_id"].map(lambda c: c in scores and scores[c].probability is not None and c in truths)]
    for (reader, with_ai), g in df.groupby(["reader", "with_ai"], sort=True):
        for task, h in g.groupby(g["case_id"].map(lambda c: scores[c].task), sort=True):
            pos = [scores[c].positive for c in h["case_id"]]
            truth = np.array([truths[c] == p for c, p in zip(h["case_id"], pos)])
            rating = np.array([reader_rating(a, k, p) for a, k, p in zip(h["answer"], h["confidence"], pos)], float)
            model = np.array([scores[c].probability for c in h["case_id"]], float)
            key = {"task": task, "positive": pos[0], "reader": reader, "mode": "with_ai" if int(with_ai) else "without_ai"}
            out.append(_auc_row(key, truth, rating, model))
    return out


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
              n_boot: int = 200, scores: dict[str, CaseScore] | None = None) -> dict[str, Any]:
    """Tables of the reader study; ``rows`` as the export CSV, ``model`` case → model answer (or None),
    ``scores`` case → :class:`CaseScore` for the reader-vs-model AUC table."""
    out: dict[str, Any] = {"n_reads": len(rows), "readers": [], "accuracy": [], "kappa": [], "mcnemar": [],
                           "times": [], "model": None, "model_kappa": [], "discordance": [], "mann_whitney": None,
                           "auc": auc_table(rows, scores or {}, truths), "auc_rating": RATING}
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

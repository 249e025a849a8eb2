"""Reader-study table analysis."""

from __future__ import annotations

import pandas as pd
import pytest

from lesiondx.stats import analyse_reader_study, cohen_kappa, mcnemar_test


def test_reader_study_tables(reader_df):
    df = reader_df
    res = analyse_reader_study(df, n_boot=300)
    acc = res.accuracy.set_index(["reader", "mode"])
    sub = df[(df.reader == "r1") & (df.with_ai == 1)]
    assert acc.loc[("r1", "with_ai"), "accuracy"] == pytest.approx((sub.truth == sub.answer).mean())
    assert len(acc) == 6 and (acc["ci_low"] <= acc["accuracy"]).all()

    k = res.kappa
    r12 = k[(k["mode"] == "without_ai") & (k["readers"] == "r1 vs r2")].iloc[0]
    w = df[df.with_ai == 0].pivot(index="case_id", columns="reader", values="answer")
    assert r12["kappa"] == pytest.approx(cohen_kappa(w["r1"], w["r2"]).kappa)
    assert set(k.loc[k["method"] == "fleiss", "mode"]) == {"with_ai", "without_ai"}

    mc = res.mcnemar.set_index("reader")
    assert mc.loc["all (pooled)", "n_pairs"] == 90
    p1 = df[df.reader == "r2"].pivot(index="case_id", columns="with_ai", values="answer")
    t = df[df.reader == "r2"].drop_duplicates("case_id").set_index("case_id")["truth"].reindex(p1.index)
    ref = mcnemar_test((p1[0] == t).to_numpy(), (p1[1] == t).to_numpy())
    assert mc.loc["r2", "p"] == pytest.approx(ref.p)

    saved = res.times.set_index("what").loc["seconds saved with AI"]
    assert saved["mean"] == pytest.approx(15.0, abs=4.0) and saved["mean_ci_low"] > 0
    assert res.to_dict()["times"][0]["n"] == 90


def test_reader_table_validation(reader_df):
    df = reader_df.drop(columns="with_ai")
    with pytest.raises(ValueError, match="with_ai"):
        analyse_reader_study(df)
    dup = pd.concat([reader_df.head(1)] * 2)
    with pytest.raises(ValueError, match="duplicate"):
        analyse_reader_study(dup)

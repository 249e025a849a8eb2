"""Reader-study mode: blinded case list, with/without AI, server-timed reads, CSV for `stats readers`."""

from __future__ import annotations

import csv
import io
import json
import time

import pandas as pd
import pytest

from lesiondx.stats.reader_study import load_reader_table

from service_helpers import CT_SERIES, US_IMAGES, file_field, wait_study


def _cases(client):
    ids = []
    for path in US_IMAGES[:3]:
        ids.append(wait_study(client, client.post("/api/studies", files=[file_field(path)]).json()["id"])["id"])
    truths = [p.name.split("_")[0] for p in US_IMAGES[:3]]  # benign / malignant from the file names
    cases = [{"case_id": f"case{i}", "study_id": sid, "truth": t} for i, (sid, t) in enumerate(zip(ids, truths))]
    assert client.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    return cases


def _read_all(client, reader, with_ai, answer_for, study_ids=()):
    seen = []
    while True:
        case = client.get("/api/reader/next", params={"reader": reader, "with_ai": int(with_ai)}).json()
        if case["case_id"] is None:
            return seen
        assert "truth" not in str(case).lower() and "study_id" not in case  # blinded
        assert not any(sid in str(case) for sid in study_ids)  # no way back to the study and its AI result
        assert (case["ai"] is not None) == with_ai
        if with_ai:
            assert case["ai"][0]["probability"] is not None and case["ai"][0]["overlays"]
        assert case["images"] and client.get(case["images"][0]).status_code == 200
        seen.append(case["case_id"])
        time.sleep(0.05)
        body = {"reader": reader, "case_id": case["case_id"], "with_ai": with_ai,
                "answer": answer_for(case["case_id"]), "confidence": 4}
        response = client.post("/api/reader/reads", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["seconds"] >= 0.05


def test_reader_flow_and_csv_feeds_the_stats(client, tmp_path):
    cases = _cases(client)
    truth = {c["case_id"]: c["truth"] for c in cases}
    ids = [c["study_id"] for c in cases]
    first = _read_all(client, "r1", False, lambda cid: "benign", ids)
    second = _read_all(client, "r1", True, lambda cid: truth[cid])
    other = _read_all(client, "r2", False, lambda cid: truth[cid])
    assert sorted(first) == sorted(second) == sorted(other) == sorted(truth)
    response = client.get("/api/reader/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["reader", "case_id", "truth", "answer", "confidence", "seconds", "with_ai"]
    assert len(rows) == 9
    table = load_reader_table(pd.read_csv(io.StringIO(response.text)))
    accuracy = table.groupby(["reader", "with_ai"])["correct"].mean().to_dict()
    assert accuracy[("r1", 1)] == 1.0 and accuracy[("r2", 0)] == 1.0
    assert accuracy[("r1", 0)] == sum(t == "benign" for t in truth.values()) / 3
    assert (table["seconds"] >= 0.05).all() and set(table["confidence"]) == {4}
    # the contract with `lesiondx stats readers --csv FILE`
    from typer.testing import CliRunner

    from lesiondx.cli import app

    path = tmp_path / "reader_study.csv"
    path.write_text(response.text)
    result = CliRunner().invoke(app, ["stats", "readers", "--csv", str(path), "--json", "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    accuracy_rows = json.loads(result.stdout)["accuracy"]
    assert {(r["reader"], r["mode"]) for r in accuracy_rows} == {("r1", "without_ai"), ("r1", "with_ai"), ("r2", "without_ai")}


def test_reader_api_rejects_bad_input(client):
    cases = _cases(client)
    assert client.post("/api/reader/cases", json={"cases": [{"case_id": "x", "study_id": "nope", "truth": "benign"}]}).status_code == 422
    case = client.get("/api/reader/next", params={"reader": "r9", "with_ai": 0}).json()
    base = {"reader": "r9", "case_id": case["case_id"], "with_ai": False, "confidence": 3}
    assert client.post("/api/reader/reads", json={**base, "answer": "maybe"}).status_code == 422
    assert client.post("/api/reader/reads", json={**base, "answer": "benign", "confidence": 9}).status_code == 422
    not_handed_out = next(c["case_id"] for c in cases if c["case_id"] != case["case_id"])
    assert client.post("/api/reader/reads", json={**base, "case_id": not_handed_out, "answer": "benign"}).status_code == 409
    assert client.post("/api/reader/reads", json={**base, "answer": "benign"}).status_code == 200
    assert client.post("/api/reader/reads", json={**base, "answer": "benign"}).status_code == 409
    assert client.get("/api/reader/next", params={"reader": "bad name!", "with_ai": 0}).status_code == 422


def _ct_and_us(client):
    ct = wait_study(client, client.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    us = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    return ct["id"], us["id"]


def test_same_images_in_both_arms_ai_overlays_only_with_ai(make_client):
    from lesiondx.service.testing import series_stub_predictor

    client = make_client(series_stub_predictor)
    ct, us = _ct_and_us(client)
    assert client.post("/api/reader/cases", json={"cases": [{"case_id": "ct1", "study_id": ct, "truth": "COVID-19"},
                                                            {"case_id": "us1", "study_id": us, "truth": "malignant"}]}).status_code == 200
    arms = {}
    for with_ai in (0, 1):
        for _ in range(2):
            case = client.get("/api/reader/next", params={"reader": "r1", "with_ai": with_ai}).json()
            arms[(case["case_id"], with_ai)] = case
            client.post("/api/reader/reads", json={"reader": "r1", "case_id": case["case_id"], "with_ai": bool(with_ai),
                                                   "answer": case["choices"][0], "confidence": 3})
    plain, ai = arms[("ct1", 0)], arms[("ct1", 1)]
    assert plain["stack"] == ai["stack"] and plain["images"] == ai["images"] == []  # a series: the stack viewer
    assert ct not in str(ai)  # the study id stays hidden
    without = client.get(plain["stack"] + "/slices", params={"with_ai": 0}).json()
    with_ = client.get(ai["stack"] + "/slices", params={"with_ai": 1}).json()
    assert without["n"] == with_["n"] == len(CT_SERIES)
    assert without["instance_numbers"] == with_["instance_numbers"] and without["window"] == with_["window"]
    assert without["findings"] == [] and without["heatmaps"] == []
    assert with_["findings"] and with_["heatmaps"]  # the only difference: the AI's boxes and heat maps
    for n in (0, len(CT_SERIES) - 1):
        same = client.get(f"{plain['stack']}/slices/{n}.raw").content
        assert same == client.get(f"/api/studies/{ct}/slices/{n}.raw").content and len(same) == 512 * 512 * 2
    assert plain["ai"] is None and ai["ai"][0]["probability"] is not None
    assert arms[("us1", 0)]["images"] == arms[("us1", 1)]["images"] != []  # the same image; the overlay is extra
    assert arms[("us1", 0)]["ai"] is None and arms[("us1", 1)]["ai"][0]["overlays"]


def test_choices_come_from_the_task_not_from_the_truths(make_client):
    from lesiondx.service.testing import series_stub_predictor

    client = make_client(series_stub_predictor)
    ct, us = _ct_and_us(client)
    # one truth in the whole list: both ultrasound answers are still offered; the CT case offers CT answers
    body = {"cases": [{"case_id": "u", "study_id": us, "truth": "malignant"}, {"case_id": "c", "study_id": ct, "truth": "normal"}]}
    assert client.post("/api/reader/cases", json=body).status_code == 200
    offered = {}
    for _ in range(2):
        case = client.get("/api/reader/next", params={"reader": "r2", "with_ai": 0}).json()
        offered[case["case_id"]] = case["choices"]
        wrong_task = "COVID-19" if case["case_id"] == "u" else "benign"
        bad = {"reader": "r2", "case_id": case["case_id"], "with_ai": False, "answer": wrong_task, "confidence": 3}
        assert client.post("/api/reader/reads", json=bad).status_code == 422
        assert client.post("/api/reader/reads", json={**bad, "answer": case["choices"][-1]}).status_code == 200
    assert offered == {"u": ["benign", "malignant"], "c": ["normal", "COVID-19"]}
    response = client.post("/api/reader/cases", json={"cases": [{"case_id": "x", "study_id": us, "truth": "COVID-19"}]})
    assert response.status_code == 422 and "not an answer choice of us-liver" in response.text
    response = client.post("/api/reader/cases", json={"cases": body["cases"][:1], "choices": {"us-liver": ["benign"]}})
    assert response.status_code == 422 and "at least 2" in response.text


def test_case_list_csv_upload_and_summary_with_the_model_as_a_rater(make_client):
    from lesiondx.service.testing import series_stub_predictor

    client = make_client(series_stub_predictor)
    ct, us = _ct_and_us(client)
    us2 = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[1])]).json()["id"])["id"]
    bad = client.post("/api/reader/cases.csv", files={"file": ("cases.csv", b"case,study\n1,2\n", "text/csv")})
    assert bad.status_code == 422 and "cases.csv" in bad.text and "truth" in bad.text
    text = f"case_id,study_id,truth\nc1,{ct},other pneumonia\nu1,{us},benign\nu2,{us2},malignant\n"
    choices = "ct-covid: normal, COVID-19, other pneumonia\n"
    response = client.post("/api/reader/cases.csv", files={"file": ("cases.csv", text.encode(), "text/csv")},
                           data={"choices": choices})
    assert response.status_code == 200, response.text
    assert response.json()["choices"]["ct-covid"] == ["normal", "COVID-19", "other pneumonia"]
    labels = {sid: client.get(f"/api/studies/{sid}").json()["results"][0]["label"] for sid in (ct, us, us2)}
    model = {"c1": labels[ct], "u1": labels[us], "u2": labels[us2]}
    for reader, with_ai in (("r1", 0), ("r1", 1), ("r2", 0)):
        while (case := client.get("/api/reader/next", params={"reader": reader, "with_ai": with_ai}).json())["case_id"]:
            assert case["choices"] == (["normal", "COVID-19", "other pneumonia"] if case["case_id"] == "c1" else ["benign", "malignant"])
            answer = model[case["case_id"]] if with_ai else case["choices"][0]  # with AI: r1 follows the model
            client.post("/api/reader/reads", json={"reader": reader, "case_id": case["case_id"], "with_ai": bool(with_ai),
                                                   "answer": answer, "confidence": 3})
    s = client.get("/api/reader/summary").json()
    assert s["n_cases"] == 3 and s["n_reads"] == 9
    truth = {"c1": "other pneumonia", "u1": "benign", "u2": "malignant"}
    assert s["model"]["n"] == 3 and s["model"]["correct"] == sum(model[c] == truth[c] for c in truth)
    follow = next(k for k in s["model_kappa"] if k["reader"] == "r1" and k["mode"] == "with_ai")
    assert follow["agreement"] == 1.0  # r1 with AI answered exactly what the model said
    expected = {c for c in truth if model[c] != ["normal", "benign", "benign"][["c1", "u1", "u2"].index(c)]}
    assert {d["case_id"] for d in s["discordance"]} == expected  # cases where a reader without AI differs
    assert s["mann_whitney"]["n_without"] == 6 and s["mann_whitney"]["n_with"] == 3
    assert {(r["reader"], r["mode"]) for r in s["readers"]} == {("r1", "without_ai"), ("r1", "with_ai"), ("r2", "without_ai")}


def test_reader_study_tokens_open_only_their_own_handed_out_cases(make_client, tmp_path, monkeypatch):
    """Blinding enforced by the server: a reader-study token cannot open studies, results or the case list,
    answers only as its reader, sees only cases handed out to it, and AI output only in the with-AI arm."""
    from lesiondx.service.server import build_settings
    from lesiondx.service.settings import SettingsError
    from lesiondx.service.testing import series_stub_predictor

    staff = {"Authorization": "Bearer staff-token-0123456789"}
    r1 = {"Authorization": "Bearer reader1-token-0123456789"}
    r2 = {"Authorization": "Bearer reader2-token-0123456789"}
    client = make_client(series_stub_predictor, user_tokens=(("organiser", "staff-token-0123456789"),),
                         reader_tokens=(("r1", "reader1-token-0123456789"), ("r2", "reader2-token-0123456789")))
    ct = wait_study(client, client.post("/api/studies", files=[file_field(p) for p in CT_SERIES], headers=staff
                                        ).json()["id"], headers=staff)["id"]
    body = {"cases": [{"case_id": "ct1", "study_id": ct, "truth": "COVID-19"}]}
    assert client.post("/api/reader/cases", json=body, headers=r1).status_code == 403  # organiser only
    assert client.post("/api/reader/cases", json=body, headers=staff).status_code == 200
    for path in (f"/api/studies/{ct}", "/api/studies", "/api/reader/export.csv", "/api/reader/summary"):
        response = client.get(path, headers=r1)
        assert response.status_code == 403 and "reader-study token" in response.text, path
    assert client.get(f"/api/studies/{ct}", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/api/reader/next", params={"reader": "r2", "with_ai": 0}, headers=r1).status_code == 403
    assert client.get("/api/reader/cases/ct1/slices", headers=r1).status_code == 403  # not handed out yet
    case = client.get("/api/reader/next", params={"reader": "r1", "with_ai": 0}, headers=r1).json()
    assert case["case_id"] == "ct1" and case["ai"] is None
    assert client.get(case["stack"] + "/slices", headers=r1).status_code == 200
    assert client.get(case["stack"] + "/slices/0.raw", headers=r1).status_code == 200
    assert client.get(case["stack"] + "/slices", params={"with_ai": 1}, headers=r1).status_code == 403
    assert client.get(case["stack"] + "/heat/0.png", headers=r1).status_code == 403
    assert client.get(case["stack"] + "/slices", headers=r2).status_code == 403  # r2 never got this case
    answer = {"reader": "r1", "case_id": "ct1", "with_ai": False, "answer": case["choices"][0], "confidence": 3}
    assert client.post("/api/reader/reads", json={**answer, "reader": "r2"}, headers=r1).status_code == 403
    assert client.post("/api/reader/reads", json=answer, headers=r1).status_code == 200
    ai_case = client.get("/api/reader/next", params={"reader": "r1", "with_ai": 1}, headers=r1).json()
    assert ai_case["ai"] and client.get(ai_case["stack"] + "/slices", params={"with_ai": 1}, headers=r1).json()["findings"]
    assert client.get("/api/reader/export.csv", headers=staff).text.count("\n") == 2  # header + r1's answer
    # settings: reader tokens need staff tokens, and must not be shared with staff
    monkeypatch.setenv("LESIONDX_READER_TOKENS", "r1:reader1-token-0123456789")
    with pytest.raises(SettingsError, match="needs LESIONDX_TOKEN"):
        build_settings(host="127.0.0.1", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    monkeypatch.setenv("LESIONDX_TOKENS", "boss:reader1-token-0123456789")
    with pytest.raises(SettingsError, match="shared with nobody"):
        build_settings(host="127.0.0.1", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")


def test_own_call_is_recorded_before_the_ai_result_is_shown(client):
    """With AI, a case is handed out only after the reader answered it without AI, and that answer stays locked."""
    cases = _cases(client)
    ask = {"reader": "r7", "with_ai": 1}
    refused = client.get("/api/reader/next", params=ask)
    assert refused.status_code == 409 and refused.json()["detail"]["own_call_first"] == len(cases)
    assert "own reading first" in refused.json()["detail"]["message"]
    plain = client.get("/api/reader/next", params={**ask, "with_ai": 0}).json()
    assert plain["ai"] is None
    own = {"reader": "r7", "case_id": plain["case_id"], "with_ai": False, "answer": "benign", "confidence": 2}
    assert client.post("/api/reader/reads", json=own).status_code == 200
    aided = client.get("/api/reader/next", params=ask).json()
    assert aided["case_id"] == plain["case_id"] and aided["ai"] and aided["own_call"] == {"answer": "benign", "confidence": 2}
    assert client.post("/api/reader/reads", json={**own, "answer": "malignant"}).status_code == 409  # locked
    assert client.post("/api/reader/reads", json={**own, "with_ai": True, "answer": "malignant"}).status_code == 200
    assert client.get("/api/reader/next", params=ask).status_code == 409  # the other cases: own call first again
    rows = list(csv.DictReader(io.StringIO(client.get("/api/reader/export.csv").text)))
    assert [(r["with_ai"], r["answer"]) for r in rows] == [("0", "benign"), ("1", "malignant")]


def _mann_whitney_auc(truth, score):
    """AUC as P(positive scores above negative) + ½ P(tie): an independent check of the DeLong point estimates."""
    pos = [s for t, s in zip(truth, score) if t]
    neg = [s for t, s in zip(truth, score) if not t]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_summary_gives_reader_and_model_auc_with_cis(client):
    """Six real AUL frames (3 benign, 3 malignant; the TEST DOUBLE's probabilities): each reader's AUC from answer and
    confidence beside the model's on the same cases, with DeLong CIs and the paired difference."""
    images = [p for p in US_IMAGES if not p.name.startswith("normal")]
    ids = [wait_study(client, client.post("/api/studies", files=[file_field(p)]).json()["id"])["id"] for p in images]
    truth = {f"u{i}": p.name.split("_")[0] for i, p in enumerate(images)}
    cases = [{"case_id": c, "study_id": sid, "truth": truth[c]} for c, sid in zip(truth, ids)]
    assert client.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    prob = {c: client.get(f"/api/studies/{sid}").json()["results"][0]["probability"] for c, sid in zip(truth, ids)}
    confidence = {c: 1 + i % 5 for i, c in enumerate(truth)}
    answer = {c: ("malignant" if i % 3 else "benign") for i, c in enumerate(truth)}  # a reader who is often wrong
    while (case := client.get("/api/reader/next", params={"reader": "r2", "with_ai": 0}).json())["case_id"]:
        c = case["case_id"]
        client.post("/api/reader/reads", json={"reader": "r2", "case_id": c, "with_ai": False, "answer": answer[c],
                                               "confidence": confidence[c]})
    s = client.get("/api/reader/summary").json()
    row = next(r for r in s["auc"] if r["reader"] == "r2")
    assert (row["task"], row["positive"], row["mode"], row["n_cases"], row["n_pos"], row["n_neg"]) == \
        ("us-liver", "malignant", "without_ai", 6, 3, 3)
    order = list(truth)
    positive = [truth[c] == "malignant" for c in order]
    rating = [5 + confidence[c] if answer[c] == "malignant" else 6 - confidence[c] for c in order]
    assert row["reader_auc"] == pytest.approx(_mann_whitney_auc(positive, rating))
    assert row["model_auc"] == pytest.approx(_mann_whitney_auc(positive, [prob[c] for c in order]))
    assert row["diff"] == pytest.approx(row["reader_auc"] - row["model_auc"])
    assert row["reader_ci_low"] <= row["reader_auc"] <= row["reader_ci_high"]
    assert row["model_ci_low"] <= row["model_auc"] <= row["model_ci_high"]
    assert row["diff_ci_low"] < row["diff"] < row["diff_ci_high"] and 0 <= row["p"] <= 1
    assert "1-10" in s["auc_rating"] and "unreliable" in row["note"]  # 3 cases per class


def test_readme_steps_name_the_export_and_its_columns_as_served():
    """The README said only "its CSV export feeds lesiondx stats readers": no route, no columns, and a 1–10 scale
    (the summary's derived rating) where readers answer a confidence of 1–5."""
    import re

    from lesiondx.service.readers import CSV_COLUMNS, ReadIn

    from service_helpers import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    steps = readme[readme.index("A two-reader study, end to end:"):]
    steps = steps[: steps.index("\n\n", steps.index("5. "))]
    assert "`GET /api/reader/export.csv`" in steps and "lesiondx stats readers --csv" in steps
    named = re.findall(r"`(\w+)`(?: \([^)]*\))?(?:,|\.| and)", steps[steps.index("One row per read:"):])
    assert tuple(named[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    bounds = {m.__class__.__name__: getattr(m, "ge", getattr(m, "le", None)) for m in ReadIn.model_fields["confidence"].metadata}
    assert bounds == {"Ge": 1, "Le": 5} and "`confidence` (1–5)" in steps and "5 (certain)" in steps


def test_with_ai_the_reader_sees_the_ai_results_input_check_and_rule(make_client):
    """The with-AI arm hands out what the study page says beside the call: the input gate's verdict and reasons, the
    OOD distance against its limit, the rule that decided a ct-covid call (SYNTHETIC flagged results, web_doubles)."""
    from web_doubles import REASON, flagged_predictor

    client = make_client(flagged_predictor)
    ct, us = _ct_and_us(client)
    cases = [{"case_id": "us1", "study_id": us, "truth": "malignant"}, {"case_id": "ct1", "study_id": ct, "truth": "COVID-19"}]
    assert client.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    aided = {}
    for _ in cases:
        plain = client.get("/api/reader/next", params={"reader": "r1", "with_ai": 0}).json()
        assert plain["ai"] is None
        client.post("/api/reader/reads", json={"reader": "r1", "case_id": plain["case_id"], "with_ai": False,
                                               "answer": plain["choices"][0], "confidence": 3})
    for _ in cases:
        case = client.get("/api/reader/next", params={"reader": "r1", "with_ai": 1}).json()
        aided[case["case_id"]] = case["ai"][0]
        client.post("/api/reader/reads", json={"reader": "r1", "case_id": case["case_id"], "with_ai": True,
                                               "answer": case["choices"][0], "confidence": 3})
    check = aided["us1"]["details"]
    assert check["validated_on_input"] is False and check["gate"]["reasons"] == [REASON]
    assert check["ood"] == {"score": 14.2, "threshold": 10.1, "out_of_distribution": True}
    assert check["heatmap_peak"] == {"inside_roi": False}
    assert aided["ct1"]["details"]["rule"]["k_consecutive"] == 5 and aided["ct1"]["threshold"] is None
    assert us not in str(aided) and ct not in str(aided) and "malignant" not in json.dumps(check)  # no study id, no truth

"""Reader-study mode: blinded case list, with/without AI, server-timed reads, CSV for `stats readers`."""

from __future__ import annotations

import csv
import io
import json
import time

import pandas as pd

from lesiondx.stats.reader_study import load_reader_table

from service_helpers import US_IMAGES, file_field, wait_study


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

"""/models/<task>: the shipped models' cards as pages, linked from each result's "model" row (what the model was
trained and validated on). The cards are the real files in models/."""

from __future__ import annotations

from lesiondx.service.model_cards import TASKS, card_path, markdown_html

from browser_fixtures import pytestmark as BROWSER


def test_markdown_subset_is_escaped_and_rendered():
    text = "# Card <script>x</script>\n\nSee [the benchmark](BENCHMARKS.md), `code` and **bold**.\n\n" \
           "| a | b |\n|---|---|\n| 1 | <b>2</b> |\n\n- one\n- two\n  continued"
    out = markdown_html(text)
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;2&lt;/b&gt;" in out
    assert "<h2>Card" in out and "the benchmark" in out and "BENCHMARKS.md" not in out  # no links off the page
    assert "<code>code</code>" in out and "<strong>bold</strong>" in out
    assert "<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td>" in out and "---" not in out
    assert "<ul><li>one</li><li>two\n  continued</li></ul>" in out


def test_fenced_code_is_a_code_block_not_a_paragraph():
    """The us-liver card's training command (a ```bash fence) read ``<p>``<code>bash OMP_…`` on one line."""
    out = markdown_html("Run:\n\n```bash\nlesiondx train --task us-liver \\\n    --out <run>\n```\n\nDone.")
    assert out == ("<p>Run:</p>\n<pre><code>lesiondx train --task us-liver \\\n    --out &lt;run&gt;</code></pre>\n"
                   "<p>Done.</p>")
    shipped = markdown_html(card_path("us-liver").read_text(encoding="utf-8"))
    assert "```" not in shipped and "<pre><code>OMP_NUM_THREADS=2" in shipped


def test_shipped_model_cards_are_served(make_client):
    client = make_client()
    for task in ("us-liver", "ct-covid", "ct-liver"):
        page = client.get(f"/models/{task}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        title = card_path(task).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        assert f"<h2>{title.replace('&', '&amp;')}</h2>" in page.text and "not a diagnosis" in page.text
        assert "<table>" in page.text and "Content-Security-Policy" in page.headers
    assert client.get("/models/mr-brain").status_code == 404
    custom = make_client(model="/somewhere/else", storage=client.app.state.core.settings.storage.parent / "s2")
    assert custom.get("/models/us-liver").status_code == 404  # another model: its card is not known here


@BROWSER[0]
@BROWSER[1]
def test_result_links_the_model_card(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server().start()
    browser.get(server.url + "/studies/none")  # the page's own verdict(), on a result of a real (not test-double) model
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return typeof verdict === 'function'"))
    html = browser.execute_script(
        "return verdict({task: 'ct-covid', results: [{}], disclaimer: ''}, {probability: 0.2, threshold: 0.5, boxes: [],"
        " model_version: 'ct-covid-unetpp-lite0', label: 'normal', details: {}})")
    assert '<a class="model-card" href="/models/ct-covid">model card: what it was trained and validated on</a>' in html
    browser.get(server.url + "/models/ct-covid")
    assert "Model card of the model shipped for ct-covid" in browser.find_element(By.TAG_NAME, "main").text


def _card(task: str) -> str:
    return card_path(task).read_text(encoding="utf-8")


def test_every_task_card_states_intended_use_what_it_never_saw_and_its_data_licences():
    """The cards had no intended use, and neither the us-liver nor the ct-covid card named its training data's
    licence (MedSeg's slices state none)."""
    for task in TASKS:
        card = _card(task)
        section = card[card.index("## Intended use"):]
        section = section[: section.index("\n## ", 4)]
        for said in ("**For:**", "**Not for:**", "**Never saw:**", "**Data and licences:**", "OOD"):
            assert said in section, (task, said)
    assert "CC BY 4.0" in _card("us-liver") and "no licence stated for the slices" in _card("ct-covid")
    assert "CC BY-NC-ND" in _card("ct-liver").split("## What ships")[0]


def test_card_figures_agree_with_the_shipped_metrics_files():
    """Each figure a card quotes from a file beside it (summary.json, ood_stats.npz, config.yaml,
    training_files.csv) is that file's value, rounded as the card rounds it."""
    import csv
    import json

    import numpy as np
    import yaml

    models = card_path("us-liver").parents[1]
    us = _card("us-liver")
    summary = json.loads((models / "us-liver" / "summary.json").read_text())
    low, high = summary["oof_auc_ci"]
    assert f"**{summary['oof_auc']:.3f} ({low:.3f}–{high:.3f})**" in us
    assert f"**Threshold {summary['threshold']:.3f}**" in us
    config = yaml.safe_load((models / "us-liver" / "config.yaml").read_text())
    assert f"`no_lesion_below` = {config['no_lesion_below']}" in us
    for task in ("us-liver", "ct-covid"):
        threshold = float(np.load(models / task / "ood_stats.npz")["threshold"])
        assert _card(task).count(f"**{threshold:.2f}**") >= 1 and f"hreshold {threshold:.2f}" in _card(task), task
    covid = yaml.safe_load((models / "ct-covid" / "config.yaml").read_text())
    assert f"probability ≥ **{covid['prob_threshold']}**" in _card("ct-covid")
    assert f"filter probability < **{covid['filter_threshold']}**" in _card("ct-covid")
    assert f"≥ {covid['k_consecutive']} consecutive" in _card("ct-covid")
    for task in TASKS:
        with open(models / task / "training_files.csv", newline="") as handle:
            n = len({row["sha256"] for row in csv.DictReader(handle)})
        assert f"the sha256 of the {n} image files" in _card(task), task


def test_the_gate_card_is_served_and_the_task_cards_link_to_it(make_client):
    """The task cards send the reader to `models/gate/MODEL_CARD.md` (the modality probe behind the input gate) and
    its thresholds, but /models/gate answered 404 and the mention was plain text."""
    client = make_client()
    gate = client.get("/models/gate")
    assert gate.status_code == 200 and "raster modality probe" in gate.text
    page = client.get("/models/us-liver").text
    assert '<a href="/models/gate"><code>models/gate/MODEL_CARD.md</code></a>' in page
    assert client.get("/models/gates").status_code == 404

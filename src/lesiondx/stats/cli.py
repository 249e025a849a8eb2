"""Typer sub-app ``lesiondx stats`` (roc, readers, report, compare), ``report_command`` and ``compare_command``.

Wire-up in lesiondx/cli.py::

    from lesiondx.stats.cli import app as stats_app, compare_command, report_command
    app.add_typer(stats_app, name="stats")
    app.command("report")(report_command)
    app.command("compare")(compare_command)

Input errors (missing file or column, one class only, non-numeric scores) print one line
naming the file and column to stderr and exit with code 2.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the statistics (pandas, scipy, statsmodels, matplotlib) are imported by the commands that
    import numpy as np  # use them: ``lesiondx predict`` imports this module and should not pay for them
    import pandas as pd

app = typer.Typer(
    help="Clinical-study statistics: ROC/AUC with DeLong CIs, reader studies, reports.", no_args_is_help=True
)


def _console() -> Console:
    """Rich console for the tables: the terminal's width, or 120 columns when the output is a file or a pipe (at rich's
    default 80 a CI was cut to ``0.9654–0.99…``)."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 120)


def _fail(msg: str) -> NoReturn:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def _read_csv(path: Path) -> pd.DataFrame:
    from lesiondx.data.tables import TableError, read_table

    try:
        table = read_table(path)
    except TableError as exc:
        _fail(str(exc))
    if table.empty:
        _fail(f"{path}: no rows (a header only)")
    return table


def _need_columns(path: Path, df: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        if c not in df.columns:
            _fail(f"{path}: column {c!r} not found (columns: {', '.join(map(str, df.columns))})")


def _score_columns(path: Path, df: pd.DataFrame,
                   cols: list[str]) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """Numeric score columns on the rows where every one of them has a value (paired analyses need
    the same cases); empty cells are left out and counted per column, text is an error; notes say how
    columns were read (percentages)."""
    import numpy as np

    from .scores import read_scores

    try:
        read = [read_scores(df[c], c) for c in cols]
    except ValueError as exc:
        _fail(f"{path}: {exc}")
    missing = {c.name: c.n_missing for c in read if c.n_missing}
    complete = np.logical_and.reduce([c.present for c in read])
    return {c.name: c.values[complete] for c in read}, missing, [c.note for c in read if c.note]


def roc_summary(df: pd.DataFrame, path: Path, label: str, positive: str | list[str], scores: list[str],
                negative: list[str] | None = None) -> dict[str, Any]:
    """The JSON document printed by ``stats roc --json``; exits with code 2 on bad input.

    Labels other than ``positive`` / ``negative`` are excluded and counted (``excluded``); rows
    without a value in one of the score columns are left out of all of them (``missing_scores``).
    """
    from .delong import auc_delong, delong_paired_test
    from .levels import select_levels
    from .report import to_jsonable
    from .roc import youden_threshold

    _need_columns(path, df, [label, *scores])
    try:
        sel = select_levels(df[label], positive, negative or None)
    except ValueError as exc:
        _fail(f"{path}: column {label!r}: {exc}")
    kept = df[sel.keep].reset_index(drop=True)
    values, missing, notes = _score_columns(path, kept, scores)
    y = sel.y[kept[scores].notna().all(axis=1).to_numpy()]
    if min(y.sum(), (~y).sum()) < 2:
        _fail(
            f"{path}: column {label!r} needs at least 2 cases of each class with scores; found {int(y.sum())} "
            f"positive ({', '.join(sel.positive)}) and {int((~y).sum())} negative ({', '.join(sel.negative)})"
        )
    out: dict[str, Any] = {"file": str(path), "label": label, "positive": ", ".join(sel.positive),
                           "levels": sel.to_dict(), "missing_scores": missing, "notes": notes, "scores": [],
                           "delong": None}
    for name, s in values.items():
        a, yd = auc_delong(y, s), youden_threshold(y, s)
        out["scores"].append(
            {
                "name": name,
                "auc": a.auc,
                "ci_low": a.ci_low,
                "ci_high": a.ci_high,
                "se": a.se,
                "n_pos": a.n_pos,
                "n_neg": a.n_neg,
                "youden": {"threshold": yd.threshold, "sensitivity": yd.sensitivity, "specificity": yd.specificity,
                           "chosen_on_these_data": True},
            }
        )
    if len(scores) == 2:
        t = delong_paired_test(y, values[scores[0]], values[scores[1]])
        out["delong"] = {
            "z": t.z,
            "p": t.p,
            "auc_diff": t.diff,
            "diff_ci_low": t.diff_ci_low,
            "diff_ci_high": t.diff_ci_high,
            "paired": True,
        }
    return to_jsonable(out)


@app.command("roc")
def roc_cmd(
    csv: Annotated[Path, typer.Option("--csv", help="CSV with one row per case")],
    label: Annotated[str, typer.Option("--label", help="label column")],
    positive: Annotated[list[str], typer.Option("--positive", help="label value(s) meaning positive (repeatable)")],
    score: Annotated[
        list[str], typer.Option("--score", help="score column (higher = positive); give twice for a paired DeLong test")
    ],
    negative: Annotated[Optional[list[str]], typer.Option(
        "--negative", help="label value(s) meaning negative (repeatable; default: the one other label); "
                           "other labels are excluded and counted")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """AUC with DeLong 95% CI and the Youden cut-off per score; paired DeLong test for two scores."""
    from .report_html import fmt_threshold

    if not 1 <= len(score) <= 2:
        _fail("give one or two --score columns")
    df = _read_csv(csv)
    res = roc_summary(df, csv, label, list(positive), list(score), list(negative or []))
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    table = Table(title=f"ROC analysis — {csv.name} (positive: {label} = {res['positive']}; "
                        f"negative: {', '.join(res['levels']['negative'])})")
    for col in ("score", "AUC", "95% CI (DeLong)", "n pos", "n neg", "Youden threshold (chosen on these data)", "sens", "spec"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for r in res["scores"]:
        yd = r["youden"]
        table.add_row(
            r["name"],
            f"{r['auc']:.4f}",
            f"{r['ci_low']:.4f}–{r['ci_high']:.4f}",
            str(r["n_pos"]),
            str(r["n_neg"]),
            fmt_threshold(yd["threshold"], 4),
            f"{yd['sensitivity']:.3f}",
            f"{yd['specificity']:.3f}",
        )
    console = _console()
    console.print(table)
    if res["levels"]["excluded"]:
        console.print("excluded: " + ", ".join(f"{k} ({v})" for k, v in res["levels"]["excluded"].items()))
    for note in res["notes"]:
        console.print(f"note: {note}")
    if res["missing_scores"]:
        left = ", ".join(f"{k} ({v})" for k, v in res["missing_scores"].items())
        console.print(f"rows without a score left out: {left}")
    if res["delong"]:
        d = res["delong"]
        console.print(
            f"Paired DeLong test {score[0]} vs {score[1]}: ΔAUC = {d['auc_diff']:.4f} "
            f"({d['diff_ci_low']:.4f} to {d['diff_ci_high']:.4f}), z = {d['z']:.3f}, p = {d['p']:.4g}"
        )


def _rich_table(title: str, df: pd.DataFrame) -> Table:
    import pandas as pd

    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return t


@app.command("readers")
def readers_cmd(
    csv: Annotated[
        Path,
        typer.Option("--csv", help="reader-study CSV: reader, case_id, truth, answer, confidence, seconds, with_ai"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    n_boot: Annotated[int, typer.Option(help="bootstrap replicates for median CIs")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> None:
    """Reader accuracy per mode (Wilson CI), kappa between readers, McNemar with vs without AI, time saved."""
    from .reader_study import analyse_reader_study
    from .report import to_jsonable

    df = _read_csv(csv)
    try:
        res = analyse_reader_study(df, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        _fail(f"{csv}: {exc}")
    if as_json:
        typer.echo(json.dumps(to_jsonable(res.to_dict()), indent=2))
        return
    console = _console()
    console.print(_rich_table("Accuracy per reader and mode (Wilson 95% CI)", res.accuracy))
    console.print(_rich_table("Agreement between readers", res.kappa))
    console.print(_rich_table("McNemar: correct without vs with AI", res.mcnemar))
    console.print(_rich_table("Reading time (seconds): mean with t CI, median with bootstrap CI", res.times))


def report_command(
    predictions: Annotated[Path, typer.Argument(help="prediction CSV: image_id, patient_id, label, score[, strata]")],
    out: Annotated[Path, typer.Option("--out", help="output folder for report.html and metrics.json")] = Path("report"),
    label_col: Annotated[Optional[str], typer.Option("--label", help="label column (default: label)")] = None,
    positive: Annotated[Optional[list[str]], typer.Option(
        "--positive", help="label value(s) meaning positive (repeatable) [1]")] = None,
    negative: Annotated[Optional[list[str]], typer.Option(
        "--negative", help="label value(s) meaning negative (repeatable; default: the one other label); "
                           "other labels are excluded and counted")] = None,
    score_col: Annotated[Optional[str], typer.Option(
        "--score", help="score column (higher = positive; empty cells are left out and counted; "
                        "83% is read as 0.83) (default: score)")] = None,
    patient_col: Annotated[Optional[str], typer.Option(
        "--patient", help="patient column ('' for none) (default: patient_id)")] = None,
    patient_rule: Annotated[Optional[str], typer.Option(
        "--patient-rule", help="patient score: mean or max of its image scores (default: mean)")] = None,
    strata: Annotated[Optional[list[str]], typer.Option("--stratum", help="column to stratify by (repeatable)")] = None,
    title: Annotated[Optional[str], typer.Option(help="report title")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="threshold in score units, fixed before this evaluation; a case is positive when score >= it "
             "(default: the model's, from PREDICTIONS.settings.json "
             "when evaluate wrote one, else Youden chosen on these data)")] = None,
    n_boot: Annotated[Optional[int], typer.Option(
        help="bootstrap replicates for the AUC CI and the ROC band; patients are resampled when there is a patient "
             "column [500]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="bootstrap seed [0]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics.json instead of the summary")] = False,
) -> Any:  # a ReportResult: typer resolves every annotation when the CLI starts
    """Write report.html and metrics.json for a prediction table (also 'lesiondx report').

    Settings written by 'lesiondx evaluate' beside the CSV (PREDICTIONS.settings.json) are the defaults, so report and evaluate give the same figures; options override them."""  # noqa: E501  (one paragraph a line: the help text)
    from .evaluation import merge_settings, read_settings, report_from_csv, settings_path, summary_lines

    if patient_rule not in (None, "mean", "max"):
        _fail(f"--patient-rule must be mean or max, not {patient_rule!r}")
    df = _read_csv(predictions)
    try:
        base = read_settings(predictions)
    except ValueError as exc:
        _fail(str(exc))
    settings = merge_settings(base, label_col=label_col, positive=positive, negative=negative, score_col=score_col,
                              patient_col=None if patient_col is None else (patient_col or ""),
                              patient_rule=patient_rule, strata=strata, title=title, threshold=threshold,
                              n_boot=n_boot, seed=seed)
    if settings.patient_col == "":
        settings = replace(settings, patient_col=None)
    _need_columns(predictions, df, [settings.label_col, settings.score_col, *settings.strata])
    try:
        res = report_from_csv(predictions, out, settings)
    except ValueError as exc:
        _fail(str(exc) if str(exc).startswith(str(predictions)) else f"{predictions}: {exc}")
    if as_json:
        typer.echo(json.dumps(res.metrics, indent=2))
        return res
    if base is not None:
        typer.echo(f"settings from {settings_path(predictions).name} (options given here override them)")
    typer.echo("\n".join(summary_lines(res.metrics)))
    typer.echo(f"wrote {res.html_path} and {res.metrics_path}")
    return res


def compare_command(
    predictions: Annotated[list[Path], typer.Argument(
        help="one CSV with a score column per model, or several CSVs (one model each) joined on image_id")],
    score: Annotated[Optional[list[str]], typer.Option(
        "--score",
        help="score column per model (repeatable); with several CSVs one for all or one per CSV "
             "(default: score)")] = None,
    name: Annotated[Optional[list[str]], typer.Option(
        "--name", help="model name per CSV (several CSVs; default: the CSV's folder or file name)")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for compare.html, metrics.json and PNG plots")] = Path(
        "compare"),
    label_col: Annotated[str, typer.Option("--label", help="label column")] = "label",
    positive: Annotated[Optional[list[str]], typer.Option("--positive", help="positive label value(s) [1]")] = None,
    negative: Annotated[Optional[list[str]], typer.Option(
        "--negative",
        help="negative label value(s) (default: the one other label); others excluded and counted")] = None,
    patient_col: Annotated[str, typer.Option("--patient", help="patient column ('' for none)")] = "patient_id",
    patient_rule: Annotated[str, typer.Option(
        "--patient-rule", help="patient score: mean or max of image scores")] = "mean",
    title: Annotated[str, typer.Option(help="report title")] = "lesiondx model comparison",
    as_json: Annotated[bool, typer.Option("--json", help="print metrics.json instead of the summary")] = False,
) -> Any:  # a CompareResult (see report_command)
    """Several models on one ROC and one decision curve, paired DeLong test for every pair, per image and per patient (also 'lesiondx compare')."""  # noqa: E501  (one paragraph a line: the help text)
    from .compare import compare_models, comparison_lines, join_predictions

    if patient_rule not in ("mean", "max"):
        _fail(f"--patient-rule must be mean or max, not {patient_rule!r}")
    tables = [_read_csv(p) for p in predictions]
    try:
        table, cols, notes = join_predictions(predictions, tables, list(score or []), list(name or []), label_col)
    except ValueError as exc:
        _fail(str(exc))
    for path, t in zip(predictions, tables):
        _need_columns(path, t, [label_col])
    try:
        res = compare_models(table, cols, out, label_col=label_col, positive=list(positive or ["1"]),
                             negative=list(negative or []) or None, patient_col=patient_col or None,
                             patient_rule=patient_rule, title=title, notes=notes)  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(f"{', '.join(map(str, predictions))}: {exc}")
    if as_json:
        typer.echo(json.dumps(res.metrics, indent=2))
        return res
    typer.echo("\n".join(comparison_lines(res.metrics)))
    typer.echo(f"wrote {res.html_path}, {res.metrics_path} and {len(res.figures)} PNG plots")
    return res


app.command("report")(report_command)
app.command("compare")(compare_command)

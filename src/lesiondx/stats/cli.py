"""Typer sub-app ``lesiondx stats`` (roc, readers, report) and ``report_command``.

Wire-up in lesiondx/cli.py::

    from lesiondx.stats.cli import app as stats_app, report_command
    app.add_typer(stats_app, name="stats")
    app.command("report")(report_command)

Input errors (missing file or column, one class only, non-numeric scores) print one line
naming the file and column to stderr and exit with code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ._validate import binarize_labels
from .delong import auc_delong, delong_paired_test
from .reader_study import analyse_reader_study
from .report import ReportResult, to_jsonable, write_report
from .roc import youden_threshold

app = typer.Typer(
    help="Clinical-study statistics: ROC/AUC with DeLong CIs, reader studies, reports.", no_args_is_help=True
)


def _fail(msg: str) -> NoReturn:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        _fail(f"{path}: file not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        _fail(f"{path}: cannot read CSV ({exc})")


def _need_columns(path: Path, df: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        if c not in df.columns:
            _fail(f"{path}: column {c!r} not found (columns: {', '.join(map(str, df.columns))})")


def _numeric_column(path: Path, df: pd.DataFrame, col: str) -> np.ndarray:
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = vals.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        _fail(
            f"{path}: column {col!r} has {int(bad.sum())} missing or non-numeric value(s), "
            f"first at data row {first + 1}: {df[col].iloc[first]!r}"
        )
    return vals.to_numpy(dtype=float)


def roc_summary(df: pd.DataFrame, path: Path, label: str, positive: str, scores: list[str]) -> dict[str, Any]:
    """The JSON document printed by ``stats roc --json``; exits with code 2 on bad input."""
    _need_columns(path, df, [label, *scores])
    if df[label].isna().any():
        _fail(f"{path}: column {label!r} has {int(df[label].isna().sum())} missing value(s)")
    try:
        y = binarize_labels(df[label], positive)
    except ValueError as exc:
        _fail(f"{path}: column {label!r}: {exc}")
    if y.all() or not y.any() or min(y.sum(), (~y).sum()) < 2:
        _fail(
            f"{path}: column {label!r} needs at least 2 cases of each class; found {int(y.sum())} "
            f"equal to {positive!r} and {int((~y).sum())} other"
        )
    values = {s: _numeric_column(path, df, s) for s in scores}
    out: dict[str, Any] = {"file": str(path), "label": label, "positive": positive, "scores": [], "delong": None}
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
                "youden": {"threshold": yd.threshold, "sensitivity": yd.sensitivity, "specificity": yd.specificity},
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
    positive: Annotated[str, typer.Option("--positive", help="value of the label column meaning positive")],
    score: Annotated[
        list[str], typer.Option("--score", help="score column (higher = positive); give twice for a paired DeLong test")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """AUC with DeLong 95% CI and the Youden cut-off per score; paired DeLong test for two scores."""
    if not 1 <= len(score) <= 2:
        _fail("give one or two --score columns")
    df = _read_csv(csv)
    res = roc_summary(df, csv, label, positive, list(score))
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    table = Table(title=f"ROC analysis — {csv.name} (positive: {label} = {positive})")
    for col in ("score", "AUC", "95% CI (DeLong)", "n pos", "n neg", "Youden threshold", "sens", "spec"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for r in res["scores"]:
        yd = r["youden"]
        table.add_row(
            r["name"],
            f"{r['auc']:.4f}",
            f"{r['ci_low']:.4f}–{r['ci_high']:.4f}",
            str(r["n_pos"]),
            str(r["n_neg"]),
            f"{yd['threshold']:.4g}",
            f"{yd['sensitivity']:.3f}",
            f"{yd['specificity']:.3f}",
        )
    console = Console()
    console.print(table)
    if res["delong"]:
        d = res["delong"]
        console.print(
            f"Paired DeLong test {score[0]} vs {score[1]}: ΔAUC = {d['auc_diff']:.4f} "
            f"({d['diff_ci_low']:.4f} to {d['diff_ci_high']:.4f}), z = {d['z']:.3f}, p = {d['p']:.4g}"
        )


def _rich_table(title: str, df: pd.DataFrame) -> Table:
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
    df = _read_csv(csv)
    try:
        res = analyse_reader_study(df, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        _fail(f"{csv}: {exc}")
    if as_json:
        typer.echo(json.dumps(to_jsonable(res.to_dict()), indent=2))
        return
    console = Console()
    console.print(_rich_table("Accuracy per reader and mode (Wilson 95% CI)", res.accuracy))
    console.print(_rich_table("Agreement between readers", res.kappa))
    console.print(_rich_table("McNemar: correct without vs with AI", res.mcnemar))
    console.print(_rich_table("Reading time (seconds): mean with t CI, median with bootstrap CI", res.times))


def report_command(
    predictions: Annotated[Path, typer.Argument(help="prediction CSV: image_id, patient_id, label, score[, strata]")],
    out: Annotated[Path, typer.Option("--out", help="output folder for report.html and metrics.json")] = Path("report"),
    label_col: Annotated[str, typer.Option("--label", help="label column")] = "label",
    positive: Annotated[str, typer.Option("--positive", help="positive label value")] = "1",
    score_col: Annotated[str, typer.Option("--score", help="score column (higher = positive)")] = "score",
    patient_col: Annotated[str, typer.Option("--patient", help="patient column ('' for none)")] = "patient_id",
    strata: Annotated[list[str] | None, typer.Option("--stratum", help="column to stratify by (repeatable)")] = None,
    title: Annotated[str, typer.Option(help="report title")] = "lesiondx evaluation report",
    threshold: Annotated[float | None, typer.Option(help="fixed cut-off (default: Youden per level)")] = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap replicates")] = 500,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> ReportResult:
    """Write report.html and metrics.json for a prediction table (``lesiondx report``)."""
    df = _read_csv(predictions)
    _need_columns(predictions, df, [label_col, score_col, *(strata or [])])
    _numeric_column(predictions, df, score_col)
    try:
        res = write_report(
            df,
            out,
            label_col=label_col,
            positive=positive,
            score_col=score_col,
            patient_col=patient_col or None,
            strata=list(strata or []),
            title=title,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
        )
    except ValueError as exc:
        _fail(f"{predictions}: {exc}")
    typer.echo(f"wrote {res.html_path} and {res.metrics_path}")
    return res


app.command("report")(report_command)

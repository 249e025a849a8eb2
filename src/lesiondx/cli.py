"""``lesiondx`` command line: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lesiondx import __version__
from lesiondx.cli_errors import SafeGroup, print_error
from lesiondx.stats.cli import app as stats_app
from lesiondx.stats.cli import compare_command, report_command

app = typer.Typer(help="lesiondx: a second opinion on medical images, with the statistics to check it.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=SafeGroup)
data_app = typer.Typer(help="Dataset folders (labels.csv + images + masks).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(stats_app, name="stats", help="Clinical-study statistics (ROC/DeLong, reader studies, reports).")
app.command("report", help="HTML evaluation report + metrics.json from a predictions CSV.")(report_command)
app.command("compare", help="Several models on one ROC and decision curve with paired DeLong tests.")(compare_command)
out = Console()
err = Console(stderr=True)

TaskOption = Annotated[str, typer.Option("--task", help="us-liver, ct-liver or ct-covid")]
EngineOption = Annotated[Optional[str], typer.Option(
    "--engine", help="auto (default: ONNX Runtime when installed and the model has its .onnx exports, else torch), "
                     "onnx, or torch (research: Grad-CAM heat maps; needs the train extra of lesiondx)")]


def _use_engine(engine: Optional[str]) -> None:
    """``--engine`` → ``$LESIONDX_ENGINE``, read where models are loaded (also by the service's worker)."""
    if engine is not None:
        import os

        from lesiondx.runtime import ENGINE_ENV, requested_engine

        try:
            os.environ[ENGINE_ENV] = requested_engine(engine)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--engine") from exc


INTERRUPTED_EXIT = 130  # Ctrl-C, as a shell reports it


def _fail(message: str, code: int = 2) -> None:
    print_error(message)
    raise typer.Exit(code)


def _run(func, *args, **kwargs):
    """Call a library function. Failures become one line + exit code in :class:`SafeGroup`
    (2 for bad input, naming the file; 1 otherwise; the traceback only with ``--debug``)."""
    return func(*args, **kwargs)


@app.callback(invoke_without_command=True)
def main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
         debug: Annotated[bool, typer.Option("--debug", envvar="LESIONDX_DEBUG",
                                             help="Show the traceback of a failure (default: one line).")] = False,
         ) -> None:
    if version:
        out.print(f"lesiondx {__version__}")
        raise typer.Exit()


@data_app.command("summary", help=(
    "Images, patients, labels, masks, problems and warnings of dataset folder(s).\n\n"
    "Every image and mask file is opened. Exit code 2 when any folder has a problem."))
def data_summary(
    folders: Annotated[list[Path], typer.Argument(help="Dataset folder(s) holding labels.csv")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    task: Annotated[Optional[str], typer.Option(
        "--task", help="Warn on labels this task does not know (default: the task of the folder's layout)")] = None,
) -> None:
    """Counts, problems and warnings of dataset folders (help text: the decorator's, one paragraph a line)."""
    from lesiondx.data import summarise_folder

    summaries = [summarise_folder(folder, task).to_dict() for folder in folders]
    if as_json:
        out.print_json(json.dumps(summaries[0] if len(summaries) == 1 else summaries))
    else:
        for summary in summaries:
            out.print(f"[bold]{summary['folder']}[/]  layout: {summary['layout']}  task: {summary['task'] or '–'}",
                      highlight=False)
            table = Table()
            table.add_column("label")
            table.add_column("images", justify="right")
            table.add_column("patients", justify="right")
            for label, count in summary["labels"].items():
                table.add_row(label, str(count), str(summary["patients_per_label"][label]))
            table.add_row("[bold]all", f"[bold]{summary['n_images']}", f"[bold]{summary['n_patients']}")
            out.print(table)
            masks = ", ".join(f"{kind}: {n}" for kind, n in summary["masks"].items()) or "none"
            out.print(f"masks present: {masks}")
            for problem in summary["problems"]:
                out.print(f"[red]problem:[/] {problem}", highlight=False, soft_wrap=True)
            for warning in summary["warnings"]:
                out.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    failed = [s for s in summaries if s["problems"]]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more folder(s))" if len(failed) > 1 else ""
        _fail(f"{first['folder']}: {len(first['problems'])} problem(s), first: {first['problems'][0]}{more}")


@app.command(help=(
    "Train a task's model into a run directory (checkpoint, ONNX exports, config, data hash, curves).\n\n"
    "Every listed file is opened first: missing or unreadable ones stop it before anything is trained, all of them "
    "named (--skip-bad: left out and listed).\n\n"
    "The run is written into RUN_DIR.partial and renamed to RUN_DIR at the end, with run.json (command, data folder "
    "and hash, seed, library versions, warnings); Ctrl-C or an error leaves nothing; a non-empty RUN_DIR is "
    "refused.\n\n"
    "--config keys are the fields of the task's config class (lesiondx.us_liver.config.UsLiverConfig, "
    "lesiondx.ct_covid.config.CovidConfig, lesiondx.ct_liver.config.CtLiverConfig); the shipped values are in "
    "models/TASK/config.yaml, a quick us-liver run in examples/tiny_us_liver.yaml."))
def train(
    task: TaskOption,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (labels.csv + images)")],
    run_dir: Annotated[Path, typer.Option("--out", help="Run directory to create")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML/TOML config")] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Train on the rows whose files are there and can be read; the others are listed in "
                           "RUN_DIR/skipped_rows.csv (default: stop before training and list them)")] = False,
) -> None:
    """Train a task's model (help text: the decorator's, one paragraph a line)."""
    from lesiondx.data import BadRowsError
    from lesiondx.data.badrows import LIST_LIMIT
    from lesiondx.tasks import load_task

    try:
        result = _run(lambda: load_task(task).train(data, run_dir, config, skip_bad=skip_bad))
    except BadRowsError as exc:
        for bad in exc.bad[:LIST_LIMIT]:
            err.print(f"[red]bad file:[/] {bad.line()} (labels.csv row {bad.row})", highlight=False, soft_wrap=True)
        more = f" ({len(exc.bad) - LIST_LIMIT} more not shown)" if len(exc.bad) > LIST_LIMIT else ""
        _fail(f"{exc.csv}: {len(exc.bad)} of {exc.n_rows} rows have files that cannot be used{more}; {exc.hint}")
    except KeyboardInterrupt:
        _fail(f"{run_dir}: interrupted, no run written (training does not resume: rerun the same command)",
              INTERRUPTED_EXIT)
    record = json.loads((Path(result) / "run.json").read_text()) if (Path(result) / "run.json").is_file() else {}
    for warning in record.get("data_warnings", []):
        err.print(f"[yellow]warning:[/] {Path(data) / 'labels.csv'}: {warning}", highlight=False, soft_wrap=True)
    for warning in record.get("run_warnings", []):
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if skip_bad and (Path(result) / "skipped_rows.csv").is_file():
        err.print(f"[yellow]warning:[/] rows skipped, listed in {Path(result) / 'skipped_rows.csv'}", highlight=False,
                  soft_wrap=True)
    from lesiondx.predict_summary import train_lines

    typer.echo("\n".join(train_lines(task, Path(result))))


@app.command(help=(
    "Score a labelled folder: predictions.csv, metrics.json and report.html, and a one-screen summary.\n\n"
    "lesiondx report on the same predictions.csv gives the same figures. Rows whose files cannot be read or are "
    "refused by the input gate are excluded, each named in a warning."))
def evaluate(
    task: TaskOption,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (labels.csv + images)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder for predictions, metrics, report")],
    model: Annotated[str, typer.Option("--model", help="RUN_DIR or 'default' (the shipped model)")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json instead of the summary")] = False,
    engine: EngineOption = None,
    classifier: ClassifierOption = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first row whose file cannot be read or is refused (default: exclude it, "
                         "list it in metrics.json 'excluded' and count it in the summary)")] = False,
) -> None:
    """Score a labelled folder (help text: the decorator's, one paragraph a line)."""
    from lesiondx.tasks import load_task

    _use_engine(engine)
    options = _ct_liver_options(task, classifier=classifier)
    metrics = _run(lambda: load_task(task).evaluate(model, data, out_dir, strict=strict, **options))
    for bad in metrics.get("excluded") or []:
        err.print(f"[yellow]warning:[/] excluded {bad['file']}: {bad['reason']}", highlight=False, soft_wrap=True)
    if metrics.get("n_excluded"):
        err.print(f"[yellow]warning:[/] {metrics['n_excluded']} of {metrics['n_listed']} rows excluded "
                  "(unreadable/refused)", highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    from lesiondx.predict_summary import evaluate_lines

    typer.echo("\n".join([*(metrics.get("summary") or [f"evaluated {data}"]), *evaluate_lines(out_dir)]))


ClassifierOption = Annotated[Optional[str], typer.Option(
    "--classifier", help="ct-liver: 'features' (measured enhancement features, the default) or 'lilnet' "
                         "(class probabilities from the model's classifier.pt)")]
CT_LIVER_FLAGS = {"window": "--window", "phases": "--phase", "classifier": "--classifier", "series": "--series"}


def _ct_liver_options(task: str, **given: object) -> dict:
    """The ct-liver-only options that were given, as keyword options for the task; refused for other tasks."""
    options = {k: v for k, v in given.items() if v is not None}
    for key in options:
        if task != "ct-liver":
            flag = CT_LIVER_FLAGS[key]
            raise typer.BadParameter(f"{flag} applies to --task ct-liver only", param_hint=flag)
    return options


@app.command()
def predict(
    task: TaskOption,
    inputs: Annotated[list[Path], typer.Argument(help="Image file(s), DICOM series or slice folder(s)")],
    model: Annotated[str, typer.Option("--model", help="RUN_DIR or 'default'")] = "default",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for overlay PNGs")] = None,
    roi: Annotated[Optional[str], typer.Option(
        "--roi", help="us-liver: the lesion box 'x,y,w,h' in pixels (x, y: top-left corner; w, h: width, height) "
                      "or a mask image of the frame's size")] = None,
    window: Annotated[Optional[str], typer.Option(
        "--window", help="ct-liver, 8-bit slices: the window they were exported with, 'center,width' in HU "
                         "(e.g. 40,350), a preset (abdomen = 40,400) or 'auto' (the default: estimated from the "
                         "slices' fat and muscle peaks, abdomen when that cannot be told)")] = None,
    frame: Annotated[Optional[int], typer.Option(
        "--frame", help="us-liver, multi-frame (cine) DICOM: score only this frame (0-based); default every frame")] = None,
    series: Annotated[bool, typer.Option(
        "--series", help="ct-liver: the image files given are the slices of one series, in this order (default: "
                         "each file is its own slice-study; a folder is always one series)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    engine: EngineOption = None,
    phase: Annotated[Optional[list[str]], typer.Option(
        "--phase", help="ct-liver: the contrast phase of each input in order (repeat: --phase arterial --phase "
                        "portal-venous; non-contrast, arterial, portal-venous or delayed), for series whose tags "
                        "and vessels cannot tell")] = None,
    classifier: ClassifierOption = None,
) -> None:
    """Second opinion for new images: probability, label, boxes and heat-map overlays."""
    from lesiondx.tasks import load_task

    _use_engine(engine)
    options: dict = {"roi": roi} if roi is not None else {}
    options |= _ct_liver_options(task, window=window, phases=phase or None, classifier=classifier,
                                 series=True if series else None)
    if frame is not None:
        if task != "us-liver":
            raise typer.BadParameter("--frame applies to --task us-liver only", param_hint="--frame")
        options["frame"] = frame
    result = _run(lambda: load_task(task).predict(list(inputs), model, out_dir, **options))
    if as_json:
        out.print_json(json.dumps(result))
    else:
        from lesiondx.predict_summary import summary_lines

        for line in summary_lines(task, result):
            typer.echo(line)


@app.command()
def serve(
    host: Annotated[str, typer.Option(
        help="Address to bind; anything but loopback needs LESIONDX_TOKEN or LESIONDX_TOKENS")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL (default: SQLite in storage)")] = None,
    storage: Annotated[Path, typer.Option("--storage", help="Folder for uploads and results")] = Path("lesiondx-data"),
    dicom_port: Annotated[Optional[int], typer.Option("--dicom-port", help="DICOM C-STORE port")] = None,
    dicom_aet: Annotated[str, typer.Option("--dicom-aet", help="DICOM AE title")] = "LESIONDX",
    dicom_host: Annotated[Optional[str], typer.Option(
        "--dicom-host", help="Address the DICOM node binds to (default 127.0.0.1, even when --host is not "
                             "loopback; or LESIONDX_DICOM_HOST)")] = None,
    engine: EngineOption = None,
) -> None:
    """Run the second-opinion service (web UI, REST API, job worker, DICOM node)."""
    from lesiondx.service.server import run_server

    _use_engine(engine)
    _run(run_server, host=host, port=port, db=db, storage=storage, dicom_port=dicom_port, dicom_aet=dicom_aet,
         dicom_host=dicom_host)


@app.command()
def worker(
    db: Annotated[Optional[str], typer.Option("--db", help="The service's SQLAlchemy URL (default: SQLite in storage)")] = None,
    storage: Annotated[Path, typer.Option("--storage", help="The service's storage folder (shared)")] = Path("lesiondx-data"),
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Worker processes (default: LESIONDX_WORKERS or 2)")] = None,
) -> None:
    """Run job workers without the web server, e.g. on another machine against the same PostgreSQL and storage."""
    from lesiondx.service.server import run_worker

    _run(run_worker, db=db, storage=storage, workers=concurrency)


if __name__ == "__main__":  # pragma: no cover
    app()

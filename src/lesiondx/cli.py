"""``lesiondx`` command line: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lesiondx import __version__
from lesiondx.stats.cli import app as stats_app
from lesiondx.stats.cli import report_command

app = typer.Typer(help="lesiondx: a second opinion on medical images, with the statistics to check it.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Dataset folders (labels.csv + images + masks).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(stats_app, name="stats", help="Clinical-study statistics (ROC/DeLong, reader studies, reports).")
app.command("report", help="HTML evaluation report + metrics.json from a predictions CSV.")(report_command)
out = Console()
err = Console(stderr=True)

TaskOption = Annotated[str, typer.Option("--task", help="us-liver, ct-liver or ct-covid")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _user_errors() -> tuple[type[Exception], ...]:
    from lesiondx.config import ConfigError
    from lesiondx.data import ManifestError
    from lesiondx.io import ImageReadError
    from lesiondx.tasks import TaskNotAvailable

    return (ConfigError, ManifestError, ImageReadError, TaskNotAvailable, ValueError, FileNotFoundError)


def _run(func, *args, **kwargs):
    """Call a library function; user-facing errors become a one-line message and exit code 2."""
    try:
        return func(*args, **kwargs)
    except _user_errors() as exc:
        _fail(str(exc))


@app.callback(invoke_without_command=True)
def main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        out.print(f"lesiondx {__version__}")
        raise typer.Exit()


@data_app.command("summary")
def data_summary(
    folders: Annotated[list[Path], typer.Argument(help="Dataset folder(s) holding labels.csv")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Images, patients, labels, masks and problems of dataset folder(s)."""
    from lesiondx.data import summarise_folder

    summaries = [_run(summarise_folder, folder).to_dict() for folder in folders]
    if as_json:
        out.print_json(json.dumps(summaries[0] if len(summaries) == 1 else summaries))
        return
    for summary in summaries:
        out.print(f"[bold]{summary['folder']}[/]  layout: {summary['layout']}", highlight=False)
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
            out.print(f"[yellow]problem:[/] {problem}")


@app.command()
def train(
    task: TaskOption,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (labels.csv + images)")],
    run_dir: Annotated[Path, typer.Option("--out", help="Run directory to create")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML/TOML config")] = None,
) -> None:
    """Train a task's model; the run directory gets checkpoint, config, data hash and curves."""
    from lesiondx.tasks import load_task

    result = _run(lambda: load_task(task).train(data, run_dir, config))
    out.print(f"run written to {result}")


@app.command()
def evaluate(
    task: TaskOption,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (labels.csv + images)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder for predictions, metrics, report")],
    model: Annotated[str, typer.Option("--model", help="RUN_DIR or 'default' (the shipped model)")] = "default",
) -> None:
    """Predict a labelled folder and write predictions.csv, metrics.json and report.html."""
    from lesiondx.tasks import load_task

    metrics = _run(lambda: load_task(task).evaluate(model, data, out_dir))
    out.print_json(json.dumps(metrics))


@app.command()
def predict(
    task: TaskOption,
    inputs: Annotated[list[Path], typer.Argument(help="Image file(s), DICOM series or slice folder(s)")],
    model: Annotated[str, typer.Option("--model", help="RUN_DIR or 'default'")] = "default",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for overlay PNGs")] = None,
    roi: Annotated[Optional[str], typer.Option("--roi", help="x,y,w,h lesion box or a mask file (us-liver)")] = None,
    window: Annotated[Optional[str], typer.Option(
        "--window", help="ct-liver, 8-bit slices: the window they were exported with, 'center,width' in HU "
                         "(e.g. 40,350), a preset (abdomen = 40,400) or 'auto' (the default: estimated from the "
                         "slices' fat and muscle peaks, abdomen when that cannot be told)")] = None,
    frame: Annotated[Optional[int], typer.Option(
        "--frame", help="us-liver, multi-frame (cine) DICOM: score only this frame (0-based); default every frame")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Second opinion for new images: probability, label, boxes and heat-map overlays."""
    from lesiondx.tasks import load_task

    if window is not None and task != "ct-liver":
        raise typer.BadParameter("--window applies to --task ct-liver only", param_hint="--window")
    options = {"roi": roi} if roi is not None else {}
    if window is not None:
        options["window"] = window
    if frame is not None:
        if task != "us-liver":
            raise typer.BadParameter("--frame applies to --task us-liver only", param_hint="--frame")
        options["frame"] = frame
    result = _run(lambda: load_task(task).predict(list(inputs), model, out_dir, **options))
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(result)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs LESIONDX_TOKEN")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL (default: SQLite in storage)")] = None,
    storage: Annotated[Path, typer.Option("--storage", help="Folder for uploads and results")] = Path("lesiondx-data"),
    dicom_port: Annotated[Optional[int], typer.Option("--dicom-port", help="DICOM C-STORE port")] = None,
    dicom_aet: Annotated[str, typer.Option("--dicom-aet", help="DICOM AE title")] = "LESIONDX",
) -> None:
    """Run the second-opinion service (web UI, REST API, job worker, DICOM node)."""
    from lesiondx.service.server import run_server

    _run(run_server, host=host, port=port, db=db, storage=storage, dicom_port=dicom_port, dicom_aet=dicom_aet)


if __name__ == "__main__":  # pragma: no cover
    app()

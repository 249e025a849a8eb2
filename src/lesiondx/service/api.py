"""FastAPI app: REST API (``/api/...``, documented at ``/docs``), web pages and the upload limit.

Test hook: ``create_app(settings, predictor=...)`` replaces the real models (which
``lesiondx.tasks.load_task(task).predict`` provides) by any callable with the
:class:`~lesiondx.service.worker.Predictor` signature, e.g. the test double
:func:`lesiondx.service.testing.stub_predictor`.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
import fastapi_offline
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from lesiondx import __version__
from lesiondx.io import AUTO, parse_window_option

from .admission import UploadGate
from .auth import Actor, FailedTokens, require_token  # noqa: F401 (require_token: re-exported for routers)
from .core import ServiceCore
from .db import AuditEvent, Study, as_utc, utcnow
from .ingest import FileError, Triage, choose_task, pseudonyms, triage_file
from .pacs.export import export_detail
from .settings import Settings
from .storage import storage_problem
from .websafety import WebSafety, page_csp, scrub_paths
from .model_cards import render_cards
from .viewer import list_fields, progress_of, router as viewer_router
from .worker import Predictor

WEB = Path(__file__).parent / "web"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI + ReDoc, served locally
DISCLAIMER = ("lesiondx gives a second opinion to support a qualified clinician. It is not a diagnosis and "
              "must not be used as the sole basis for clinical decisions.")
MB = 1024 * 1024
LOW_SPACE = 1024 * MB  # /api/ready answers 503 below this much free space in storage (or twice the request limit)
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
           'fill="#1d4e89"/><circle cx="16" cy="16" r="8" fill="none" stroke="#fff" stroke-width="3"/>'
           '<circle cx="16" cy="16" r="3" fill="#f4a259"/></svg>')


class RequestSizeLimit:
    """ASGI middleware: HTTP 413 (with the limit in the message) for request bodies over ``limit`` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request too large: the limit is {self.limit / MB:.0f} MB per request (LESIONDX_MAX_REQUEST_MB)"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)
                return
        seen = 0
        exceeded = False
        replaced = False

        async def limited_receive() -> dict:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge()
            return msg

        async def guarded_send(msg: dict) -> None:
            # The framework may turn the aborted body read into its own 400: answer 413 instead.
            nonlocal replaced
            if not exceeded:
                await send(msg)
            elif not replaced:
                replaced = True
                await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not replaced:
                await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass


def _core(request: Request) -> ServiceCore:
    return request.app.state.core


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset (SQLite returns naive UTC datetimes)."""
    if value is None:
        return None
    return as_utc(value).isoformat()


def study_summary(study: Study) -> dict[str, Any]:
    """The list view of a study."""
    results = study.results
    first = results[0] if results else {}
    return {
        "id": study.id, "status": "queued" if study.status == "receiving" else study.status,
        "stage": study.status, "task": study.task, "source": study.source, "modality": study.modality,
        "created_at": iso(study.created_at),
        "n_results": len(results), "n_errors": len(study.errors),
        "label": first.get("label"), "probability": first.get("probability"),
        "url": f"/api/studies/{study.id}",
    }


def study_detail(study: Study) -> dict[str, Any]:
    """The full view of a study, with links to overlay and preview images."""
    base = f"/api/studies/{study.id}/files/"
    results = []
    for entry in study.results:
        entry = dict(entry)
        entry["overlays"] = [{"name": n, "url": base + n} for n in entry.get("overlays") or []]
        preview = entry.pop("input_preview", None)
        entry["image_url"] = base + preview if preview else None
        results.append(entry)
    return {
        **study_summary(study), "task_requested": study.task_requested, "options": study.options, "results": results,
        "errors": study.errors, "warnings": study.warnings, "failure": study.failure, "attempts": study.attempts,
        "n_files": len(study.files), "export": export_detail(study),
        "duplicates_dropped": study.duplicates_dropped or 0, "reopened": study.reopened or 0,
        "result_version": study.result_version or 0,
        "started_at": iso(study.started_at), "finished_at": iso(study.finished_at),
        "disclaimer": DISCLAIMER,
    }


def _scrubbed_error(error: dict[str, Any]) -> dict[str, Any]:
    return {**error, "reason": scrub_paths(str(error.get("reason", "")))} if "reason" in error else error


def without_server_paths(detail: dict[str, Any]) -> dict[str, Any]:
    """A study detail whose failure, errors and warnings name files by their last component only."""
    cleaned = dict(detail)
    if cleaned.get("failure"):
        cleaned["failure"] = scrub_paths(str(cleaned["failure"]))
    for key in ("errors", "warnings"):
        if isinstance(cleaned.get(key), list):
            cleaned[key] = [_scrubbed_error(e) if isinstance(e, dict) else scrub_paths(str(e)) for e in cleaned[key]]
    return cleaned


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what only: FastAPI's default echoes the rejected ``input`` (upload bytes)."""
    errors = []
    for error in exc.errors():
        entry = {"loc": list(error.get("loc", ())), "msg": scrub_paths(str(error.get("msg", ""))),
                 "type": error.get("type")}
        if list(entry["loc"])[:2] == ["body", "files"]:
            entry["msg"] = "not a file upload (a 'files' part needs a file name and content)"
        errors.append(entry)
    return JSONResponse({"detail": errors}, status_code=422)


async def storage_error(request: Request, exc: Exception) -> JSONResponse:
    """507 (storage full) or 503 (not writable) with one line, for errors of the storage folder or database;
    any other error goes on to the server's 500."""
    reason = storage_problem(exc)
    if reason is None:
        raise exc
    logging.getLogger("lesiondx.service").error("%s %s refused: %s", request.method, request.url.path, reason)
    return JSONResponse({"detail": reason}, status_code=507 if "full" in reason else 503)


def render_pages() -> dict[str, str]:
    """The web pages, rendered once: each extends ``web/_layout.html`` (header, nav, disclaimer)."""
    env = Environment(loader=FileSystemLoader(WEB), autoescape=True)
    return {name: env.get_template(name).render() for name in ("index.html", "study.html", "reader.html")}


def create_app(settings: Settings, predictor: Predictor | None = None, *, start_background: bool = True) -> FastAPI:
    """The FastAPI app. ``predictor`` is the test hook (default: the real task models);
    ``start_background=False`` leaves the worker and DICOM node stopped (for unit tests)."""
    core = ServiceCore(settings, predictor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_background:
            core.start()
        try:
            yield
        finally:
            core.stop()

    app = FastAPI(title="lesiondx second-opinion service", version=__version__, lifespan=lifespan,
                  description=DISCLAIMER, docs_url=None, redoc_url=None)
    app.state.core = core
    app.state.failed_tokens = FailedTokens()
    app.add_middleware(RequestSizeLimit, limit=settings.max_request_bytes)
    app.add_middleware(UploadGate, max_uploads=settings.max_uploads, wait_s=settings.upload_wait_s,
                       idle_s=settings.upload_idle_s)  # outside the size limit: a refused upload reads nothing
    bound = () if settings.host in ("0.0.0.0", "::", "") else (settings.host.lower(),)
    app.add_middleware(WebSafety, allowed_hosts=settings.allowed_hosts + bound)  # outermost: runs first
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    for error in (OSError, OperationalError):
        app.add_exception_handler(error, storage_error)
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/api/health", tags=["service"])
    def health(request: Request) -> dict[str, Any]:
        """Liveness plus queue counts, age of the oldest queued study (s), free space in storage (MB) and the
        problems that make :func:`ready` answer 503; needs no token. 503 when the database is unreachable."""
        with core.db.session() as s:
            counts = dict(s.execute(select(Study.status, func.count()).group_by(Study.status)).all())
            oldest = s.scalar(select(func.min(Study.created_at)).where(Study.status == "queued"))
        node = core.dicom_node
        free_mb = shutil.disk_usage(core.storage.root).free / MB
        problems = [] if core.worker.alive else ["the job workers are not running (see the service log)"]
        if free_mb * MB < max(LOW_SPACE, 2 * settings.max_request_bytes):
            problems.append(f"storage almost full: {free_mb:.0f} MB free in the storage folder")
        problems += [unwritable] if (unwritable := core.storage.write_problem()) else []
        age = None if oldest is None else utcnow() - as_utc(oldest)
        return {"status": "ok", "version": __version__, "worker_alive": core.worker.alive, "queue": counts,
                "oldest_queued_s": None if age is None else max(0.0, round(age.total_seconds(), 1)),  # clock set back
                "storage_free_mb": round(free_mb), "problems": problems,
                "dicom": {"aet": settings.dicom_aet, "port": node.port} if node else None,
                "pacs": str(settings.pacs) if settings.pacs else None, "disclaimer": DISCLAIMER}

    @app.get("/api/ready", tags=["service"])
    def ready(request: Request) -> JSONResponse:
        """Readiness for a load balancer or monitor: 200 when studies can be taken and processed, else 503 with the
        problems (workers not running, storage almost full or not writable, database unreachable); needs no token."""
        body = health(request)
        return JSONResponse({"ready": not body["problems"], "problems": body["problems"]},
                            status_code=503 if body["problems"] else 200)

    @app.post("/api/studies", tags=["studies"], status_code=201)
    def upload(request: Request, who: Actor, files: Annotated[list[UploadFile], File(description="DICOM, zip of DICOM, PNG or JPG")],
               task: Annotated[str | None, Form(description="us-liver, ct-liver or ct-covid; default: by modality")] = None,
               window: Annotated[str | None, Form(description="ct-liver PNG/JPG slices: the window they were "
                                                  "exported with, 'center,width' in HU; default 'auto': estimated "
                                                  "from the slices (abdomen 40,400 when it cannot be told)")] = None
               ) -> dict[str, Any]:
        """Upload one study (one or many files). Returns ``{"id"}``; per-file problems are on the study.
        A request where no file is usable gets 413 (all too large) or 422 with every reason."""
        task = (task or "").strip() or None
        if task is not None and task not in ("us-liver", "ct-liver", "ct-covid"):
            raise HTTPException(400, f"unknown task {task!r}; choose us-liver, ct-liver or ct-covid")
        options = {}
        if (window or "").strip():
            try:
                w = parse_window_option(window)
            except ValueError as exc:
                raise HTTPException(400, f"{exc} (or 'auto')") from None
            options["window"] = w if w == AUTO else f"{w.center:g},{w.width:g}"
        triage = Triage()
        names = pseudonyms([f.filename or "" for f in files])  # the client's file names go no further
        for upload_file, name in zip(files, names):
            if upload_file.size is not None and upload_file.size > settings.max_file_bytes:
                triage.errors.append(FileError(name, f"file too large ({upload_file.size / MB:.1f} MB > limit "
                                                     f"{settings.max_file_bytes / MB:.1f} MB)"))
                continue
            data = upload_file.file.read(settings.max_file_bytes + 1)
            triage.extend(triage_file(name, data, core.salt, policy=core.ingest_policy))
        client = request.client.host if request.client else None
        if task is not None and triage.accepted:
            _, misfits, fitting = choose_task(triage.accepted, task)
            if not fitting:  # e.g. only CT sent to us-liver: refused like junk, nothing queued
                triage.errors.extend(misfits)
                triage.accepted.clear()
        if not triage.accepted:
            core.db.audit(who, "upload_rejected", detail=f"{len(files)} file(s), none usable", client=client)
            errors = [_scrubbed_error(e.to_dict()) for e in triage.errors]
            status = 413 if errors and all("too large" in e["reason"] for e in errors) else 422
            raise HTTPException(status, {"message": "no usable image in this upload", "errors": errors})
        study = core.submit(triage, requested_task=task, uploader=who, options=options)
        core.db.audit(who, "upload", study.id, f"{len(files)} file(s): {len(study.files)} accepted, "
                                               f"{len(study.errors)} error(s)", client)
        return {"id": study.id, "status": study.status, "task": study.task, "errors": study.errors,
                "url": f"/api/studies/{study.id}"}

    @app.get("/api/studies", tags=["studies"])
    def list_studies(request: Request, who: Actor, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Most recent studies first."""
        with core.db.session() as s:
            rows = s.scalars(select(Study).order_by(Study.created_at.desc())
                             .limit(max(1, min(limit, 1000))).offset(max(0, offset))).all()
            return [{**study_summary(r), **list_fields(core, r)} for r in rows]  # not audited: the UI polls it; reads of a study are

    @app.get("/api/studies/{study_id}", tags=["studies"])
    def get_study(study_id: str, request: Request, who: Actor) -> dict[str, Any]:
        """Status, results (probability, label, boxes, model version, overlay links) and per-file errors."""
        with core.db.session() as s:
            study = s.get(Study, study_id[:32])
            if study is None:
                raise HTTPException(404, f"no study {study_id!r}")
            detail = {**without_server_paths(study_detail(study)), "progress": progress_of(core, s, study),
                      **list_fields(core, study)}
        core.db.audit(who, "read", study_id, client=request.client.host if request.client else None)
        return detail

    @app.get("/api/studies/{study_id}/files/{name}", tags=["studies"], response_class=FileResponse)
    def get_file(study_id: str, name: str, request: Request, who: Actor) -> FileResponse:
        """An overlay or preview image of a study."""
        path = core.storage.result_file(study_id[:32], name)
        if path is None:
            raise HTTPException(404, f"no file {name!r} for study {study_id!r}")
        core.db.audit(who, "read_file", study_id[:32], name, request.client.host if request.client else None)
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @app.delete("/api/studies/{study_id}", tags=["studies"], status_code=204)
    def delete_study(study_id: str, request: Request, who: Actor) -> Response:
        """Delete a finished study with its files and results (409 while it runs, is being sent to the PACS or
        is a reader-study case). The audit log keeps the event."""
        from .retention import StudyBusy, delete_study as remove

        try:
            done = remove(core.db, core.storage, study_id[:32])
        except KeyError:
            raise HTTPException(404, f"no study {study_id!r}") from None
        except StudyBusy as exc:
            raise HTTPException(409, str(exc)) from None
        core.db.audit(who, "delete", study_id[:32], f"{done.blobs} stored file(s), {done.bytes_freed} bytes freed",
                      request.client.host if request.client else None)
        return Response(status_code=204)

    @app.get("/api/audit", tags=["service"])
    def audit_log(who: Actor, limit: int = 200) -> list[dict[str, Any]]:
        """The latest audit events (ids, actions, counts; no PHI)."""
        with core.db.session() as s:
            rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 5000)))).all()
            return [{"at": iso(r.at), "actor": r.actor, "client": r.client, "action": r.action,
                     "study_id": r.study_id, "detail": r.detail} for r in rows]

    from .readers import router as reader_router

    app.include_router(reader_router)
    app.include_router(viewer_router)

    pages = render_pages()
    pages.update({name: (WEB / name).read_text(encoding="utf-8") for name in ("docs.html", "redoc.html")})
    pages.update(render_cards(Environment(loader=FileSystemLoader(WEB), autoescape=True), settings.model))

    def page(name: str) -> HTMLResponse:
        return HTMLResponse(pages[name], headers={"Content-Security-Policy": page_csp(pages[name])})

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return page("index.html")

    @app.get("/studies/{study_id}", include_in_schema=False)
    def study_page(study_id: str) -> HTMLResponse:
        return page("study.html")

    @app.get("/reader", include_in_schema=False)
    def reader_page() -> HTMLResponse:
        return page("reader.html")

    @app.get("/models/{task}", include_in_schema=False)
    def model_card_page(task: str) -> HTMLResponse:
        """The shipped model's card (what it was trained and validated on); 404 for another model or task."""
        if f"card-{task}" not in pages:
            raise HTTPException(404, f"no model card for {task!r} (only the shipped models' cards are served)")
        return page(f"card-{task}")

    @app.get("/docs", include_in_schema=False)
    def docs_page() -> HTMLResponse:
        """Swagger UI from the package's own copy (renders offline)."""
        return page("docs.html")

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return page("redoc.html")

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    return app

"""Reader-study mode: radiologists read a case list blinded, with or without the AI result.

Workflow: an organiser posts the case list (finished studies plus the reference answer) to
``POST /api/reader/cases`` (JSON) or ``POST /api/reader/cases.csv`` (the CSV the ``/reader`` page
uploads), with the answer choices per task (default :data:`TASK_CHOICES`; never taken from the truths,
so a list whose truths are all "malignant" still offers "benign"). Each reader opens ``/reader`` (or
calls ``GET /api/reader/next``), sees one case at a time in a per-reader random order — the same images
in both arms (a CT series: every slice in the stack viewer, ``/api/reader/cases/{id}/slices``), plus the
AI result, its boxes and heat maps only when ``with_ai=1``, and only for a case the reader has already answered
without AI (own call first; an answer cannot be changed) — and answers with a confidence of 1-5. Reading time is measured by the server from
when the case was handed out to when the answer arrived. ``GET /api/reader/export.csv`` gives the
table ``reader, case_id, truth, answer, confidence, seconds, with_ai`` read by
``lesiondx stats readers --csv FILE``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from .auth import Caller, require_reader_access, require_token
from .db import ReaderCase, ReaderRead, Study, as_utc, utcnow
from .viewer import heat_map, raw_slice, slices_listing, stack_info
from .websafety import scrub_paths

CSV_COLUMNS = ("reader", "case_id", "truth", "answer", "confidence", "seconds", "with_ai")
TASK_CHOICES: dict[str, list[str]] = {"us-liver": ["benign", "malignant"], "ct-covid": ["normal", "COVID-19"],
                                      "ct-liver": ["no focal lesion", "benign", "malignant"]}
POSITIVE_CHOICE = {"us-liver": "malignant", "ct-covid": "COVID-19"}  # the class each task's probability is of
SETTINGS_FILE = "reader_study.json"  # in the storage folder: the answer choices of the current case list
router = APIRouter(prefix="/api/reader", tags=["reader study"])


class CaseIn(BaseModel):
    """One case of the list: a study id and the reference answer (never shown to readers)."""

    case_id: str = Field(min_length=1, max_length=64)
    study_id: str = Field(min_length=1, max_length=32)
    truth: str = Field(min_length=1, max_length=64)


class CaseList(BaseModel):
    """Cases plus the answer choices per task (``{"ct-covid": ["normal", "COVID-19", "other pneumonia"]}``);
    tasks not named keep :data:`TASK_CHOICES`."""

    cases: list[CaseIn] = Field(min_length=1, max_length=5000)
    choices: dict[str, list[str]] = Field(default_factory=dict)


class ReadIn(BaseModel):
    """A reader's answer to the case last handed out to them in this mode."""

    reader: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    case_id: str = Field(min_length=1, max_length=64)
    with_ai: bool
    answer: str = Field(min_length=1, max_length=64)
    confidence: int = Field(ge=1, le=5)


def _order(reader: str, cases: list[ReaderCase]) -> list[ReaderCase]:
    """A fixed random order per reader (hash of reader and case), to spread order effects."""
    return sorted(cases, key=lambda c: hashlib.sha256(f"{reader}|{c.case_id}".encode()).hexdigest())


def task_choices(core: Any) -> dict[str, list[str]]:
    """The answer choices per task of the current case list (defaults: :data:`TASK_CHOICES`)."""
    try:
        saved = json.loads((core.storage.root / SETTINGS_FILE).read_text())["choices"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = {}
    return {**TASK_CHOICES, **{k: list(v) for k, v in saved.items() if isinstance(v, list)}}


def _choices_for(core: Any, study: Study | None) -> list[str]:
    table = task_choices(core)
    return table.get(study.task or "", []) if study is not None else []


def _check_choices(choices: dict[str, list[str]]) -> None:
    for task, values in choices.items():
        if task not in TASK_CHOICES:
            raise HTTPException(422, f"choices for unknown task {task!r}; tasks: {', '.join(TASK_CHOICES)}")
        clean = [v.strip() for v in values]
        if len(clean) < 2 or len(set(clean)) != len(clean) or not all(0 < len(v) <= 64 for v in clean):
            raise HTTPException(422, f"choices for {task}: give at least 2 distinct answers of 1-64 characters")


def store_cases(core: Any, body: CaseList, who: str) -> dict[str, Any]:
    """Validate (studies exist and are done, truths among their task's choices) and store a case list."""
    _check_choices(body.choices)
    choices = {**task_choices(core), **{k: [v.strip() for v in vs] for k, vs in body.choices.items()}}
    with core.db.session() as s, s.begin():
        problems = []
        for case in body.cases:
            study = s.get(Study, case.study_id)
            if study is None:
                problems.append(f"{case.case_id}: unknown study id {case.study_id}")
            elif study.status != "done":
                problems.append(f"{case.case_id}: study {case.study_id} is {study.status}, not done")
            elif case.truth not in choices.get(study.task or "", []):
                problems.append(f"{case.case_id}: truth {case.truth!r} is not an answer choice of {study.task} "
                                f"({', '.join(choices.get(study.task or '', []))})")
        if problems:
            raise HTTPException(422, "; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))
        for position, case in enumerate(body.cases):
            row = s.get(ReaderCase, case.case_id) or ReaderCase(case_id=case.case_id)
            row.study_id, row.truth, row.position = case.study_id, case.truth, position
            s.add(row)
    if body.choices:
        (core.storage.root / SETTINGS_FILE).write_text(json.dumps({"choices": choices}))
    core.db.audit(who, "reader_cases", detail=f"{len(body.cases)} case(s)")
    return {"cases": len(body.cases), "choices": choices}


@router.post("/cases")
def set_cases(body: CaseList, request: Request, who: str = Depends(require_token)) -> dict[str, Any]:
    """Add or replace cases (by ``case_id``); every study must be done and every truth one of its task's choices."""
    return store_cases(request.app.state.core, body, who)


@router.post("/cases.csv")
def set_cases_csv(request: Request, file: Annotated[UploadFile, File(description="CSV: case_id, study_id, truth")],
                  choices: Annotated[str | None, Form(description="one line per task: 'ct-covid: normal, COVID-19'")] = None,
                  who: str = Depends(require_token)) -> dict[str, Any]:
    """The case list as a CSV file (columns ``case_id, study_id, truth``; others ignored) plus optional choices."""
    name = file.filename or "case list"
    try:
        text = file.file.read(5_000_000).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise HTTPException(422, f"{name}: not a UTF-8 CSV file ({exc})") from None
    missing = [c for c in ("case_id", "study_id", "truth") if not rows or c not in rows[0]]
    if missing:
        raise HTTPException(422, f"{name}: no rows, or missing column(s) {', '.join(missing)} (needs case_id, study_id, truth)")
    table: dict[str, list[str]] = {}
    for line in (choices or "").splitlines():
        if line.strip():
            task, _, values = line.partition(":")
            table[task.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    try:
        body = CaseList(cases=[{k: (r.get(k) or "").strip() for k in ("case_id", "study_id", "truth")} for r in rows],
                        choices=table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise HTTPException(422, f"{name}: {where}: {first.get('msg')}") from None
    return store_cases(request.app.state.core, body, who)


@router.get("/next")
def next_case(reader: str, with_ai: bool, request: Request,
              caller: Caller = Depends(require_reader_access)) -> dict[str, Any]:
    """The reader's next unanswered case in this mode (starts its clock), or ``case_id: null`` when done.

    With AI, only cases the reader has already answered without AI are handed out (with ``own_call``, that
    locked answer); 409 with ``own_call_first`` (the count) while none is left but some are unread without AI."""
    core = request.app.state.core
    if not reader or len(reader) > 64 or not all(c.isalnum() or c in "._@-" for c in reader):
        raise HTTPException(422, "reader must be 1-64 letters, digits or ._@-")
    _same_reader(caller, reader)
    who = caller.identity
    with core.db.session() as s, s.begin():
        cases = list(s.scalars(select(ReaderCase)))
        reads = {r.case_id: r for r in s.scalars(select(ReaderRead).where(ReaderRead.reader == reader,
                                                                            ReaderRead.with_ai == with_ai))}
        done = sum(1 for r in reads.values() if r.answer is not None)
        pending = [c for c in _order(reader, cases) if reads.get(c.case_id) is None or reads[c.case_id].answer is None]
        base = {"reader": reader, "with_ai": with_ai, "total": len(cases), "done": done}
        own: dict[str, ReaderRead] = {}
        if with_ai:  # the reader's own call on a case is recorded before its AI result is shown
            own = {r.case_id: r for r in s.scalars(select(ReaderRead).where(
                ReaderRead.reader == reader, ReaderRead.with_ai.is_(False), ReaderRead.answer.is_not(None)))}
            unread = sum(1 for c in pending if c.case_id not in own)
            pending = [c for c in pending if c.case_id in own]
            if not pending and unread:
                raise HTTPException(409, {"message": f"record your own reading first: {unread} case(s) not yet read "
                                                     "without AI (the AI result of a case is shown only after your own "
                                                     "call on it, which cannot be changed)", "own_call_first": unread})
        if not pending:
            return {**base, "case_id": None, "choices": []}
        case = pending[0]
        if with_ai:
            mine = own[case.case_id]
            base["own_call"] = {"answer": mine.answer, "confidence": mine.confidence}
        read = reads.get(case.case_id)
        if read is None:
            s.add(ReaderRead(reader=reader, case_id=case.case_id, with_ai=with_ai, started_at=utcnow()))
        study = s.get(Study, case.study_id)
        payload = _case_payload(core, study, case.case_id, with_ai)
        base["choices"] = _choices_for(core, study)
    core.db.audit(who, "reader_next", study.id if study else None, f"reader case {case.case_id[:40]}")
    return {**base, "case_id": case.case_id, **payload}


def _case_payload(core: Any, study: Study | None, case_id: str, with_ai: bool) -> dict[str, Any]:
    """Images of a case by case-scoped URLs that hide the study id — the same in both arms: a series as
    the stack viewer's base URL (``stack``), single images as previews; the AI result (label, probability,
    overlays; boxes and heat maps in the viewer) only in ``with_ai`` mode. Never the truth or patient data."""
    if study is None:
        return {"images": [], "stack": None, "ai": None}
    base = f"/api/reader/cases/{case_id}"
    results = study.results
    stack = base if stack_info(core.storage.results_dir(study.id)) is not None else None
    images = [] if stack else sorted({f"{base}/files/{r['input_preview']}" for r in results if r.get("input_preview")})
    ai = None
    if with_ai and results:
        ai = [{"label": r.get("label"), "probability": r.get("probability"), "threshold": r.get("threshold"),
               "model_version": r.get("model_version"), "details": input_check(r.get("details")),
               "overlays": [] if stack else [f"{base}/files/{n}" for n in r.get("overlays") or []]} for r in results]
    return {"images": images, "stack": stack, "task": study.task, "ai": ai}


AI_CHECK_KEYS = ("validated_on_input", "out_of_scope_flag", "out_of_scope_reasons", "caveat", "rule",
                 "no_lesion_threshold", "p_lesion")


def input_check(details: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a result's details the with-AI arm shows beside the call, as the study page does: the input
    gate's verdict and reasons, the OOD distance and its limit, the rule or lesion threshold that decided the call,
    where the heat map peaks, and any caveat (server paths cut from the texts)."""
    details = details if isinstance(details, dict) else {}
    out = {k: details[k] for k in AI_CHECK_KEYS if k in details}
    gate = details.get("gate")
    if isinstance(gate, dict):
        out["gate"] = {k: gate[k] for k in ("status", "out_of_scope_flag", "validated_on_input", "reasons") if k in gate}
    ood = details.get("ood")
    if isinstance(ood, dict):
        out["ood"] = {k: ood[k] for k in ("score", "threshold", "out_of_distribution") if k in ood}
    peak = details.get("heatmap_peak")
    if isinstance(peak, dict) and "inside_roi" in peak:
        out["heatmap_peak"] = {"inside_roi": peak["inside_roi"]}
    return json.loads(scrub_paths(json.dumps(out)))


def _case_study(core: Any, case_id: str, caller: Caller | None = None, *, ai: bool = False) -> str:
    """The study behind a case. A reader-study token sees only cases handed out to its reader, and AI output
    (``ai``) only for a case handed out in the with-AI arm (403 otherwise); staff see every case."""
    with core.db.session() as s:
        case = s.get(ReaderCase, case_id[:64])
        if case is None:
            raise HTTPException(404, f"no case {case_id!r}")
        if caller is not None and caller.reader_only:
            reads = list(s.scalars(select(ReaderRead).where(ReaderRead.reader == caller.identity,
                                                            ReaderRead.case_id == case.case_id)))
            if not reads:
                raise HTTPException(403, f"case {case_id!r} has not been handed out to reader {caller.identity!r}")
            if ai and not any(r.with_ai for r in reads):
                raise HTTPException(403, f"reader {caller.identity!r} reads case {case_id!r} without AI: no AI output")
        return case.study_id


def _same_reader(caller: Caller, reader: str) -> None:
    """A reader-study token reads (and answers) only as its own reader."""
    if caller.reader_only and reader != caller.identity:
        raise HTTPException(403, f"this reader-study token belongs to reader {caller.identity!r}, not {reader!r}")


def _is_ai_file(core: Any, study_id: str, name: str) -> bool | None:
    """True for an AI overlay of the study, False for an input preview, None for any other file."""
    with core.db.session() as s:
        study = s.get(Study, study_id)
        results = study.results if study is not None else []
    if any(name in (r.get("overlays") or []) for r in results):
        return True
    return False if any(name == r.get("input_preview") for r in results) else None


@router.get("/cases/{case_id}/files/{name}")
def case_file(case_id: str, name: str, request: Request, caller: Caller = Depends(require_reader_access)) -> FileResponse:
    """An image of a reader case (input preview or AI overlay) without revealing the study id."""
    core = request.app.state.core
    study_id = _case_study(core, case_id)
    if caller.reader_only:
        kind = _is_ai_file(core, study_id, name)
        if kind is None:
            raise HTTPException(404, f"no file {name!r} for case {case_id!r}")
        _case_study(core, case_id, caller, ai=kind)
    path = core.storage.result_file(study_id, name)
    if path is None:
        raise HTTPException(404, f"no file {name!r} for case {case_id!r}")
    return FileResponse(path)


@router.get("/cases/{case_id}/slices")
def case_slices(case_id: str, request: Request, with_ai: bool = False,
                caller: Caller = Depends(require_reader_access)) -> dict[str, Any]:
    """The stack of a case for the viewer; findings and heat maps only with ``with_ai=1``."""
    core = request.app.state.core
    return slices_listing(core, _case_study(core, case_id, caller, ai=with_ai), with_ai=with_ai)


@router.get("/cases/{case_id}/slices/{n}.raw", response_class=Response)
def case_slice(case_id: str, n: int, request: Request, caller: Caller = Depends(require_reader_access)) -> Response:
    """Slice ``n`` of a case (int16, as ``/api/studies/{id}/slices/{n}.raw``)."""
    core = request.app.state.core
    return raw_slice(core, _case_study(core, case_id, caller), n)


@router.get("/cases/{case_id}/heat/{n}.png", response_class=Response)
def case_heat(case_id: str, n: int, request: Request, caller: Caller = Depends(require_reader_access)) -> Response:
    """Heat map of slice ``n`` of a case (the with-AI arm's viewer asks for it)."""
    core = request.app.state.core
    return heat_map(core, _case_study(core, case_id, caller, ai=True), n)


@router.post("/reads")
def submit_read(body: ReadIn, request: Request, caller: Caller = Depends(require_reader_access)) -> dict[str, Any]:
    """Record the answer; ``seconds`` is server time since the case was handed out."""
    core = request.app.state.core
    _same_reader(caller, body.reader)
    who = caller.identity
    with core.db.session() as s, s.begin():
        case = s.get(ReaderCase, body.case_id)
        if case is None:
            raise HTTPException(404, f"no case {body.case_id!r}")
        choices = _choices_for(core, s.get(Study, case.study_id))
        if body.answer not in choices:
            raise HTTPException(422, f"answer must be one of {choices}")
        read = s.scalars(select(ReaderRead).where(ReaderRead.reader == body.reader, ReaderRead.case_id == body.case_id,
                                                  ReaderRead.with_ai == body.with_ai)).first()
        if read is None:
            raise HTTPException(409, "this case was not handed out to this reader in this mode (GET /api/reader/next)")
        if read.answer is not None:
            raise HTTPException(409, "this case is already answered by this reader in this mode")
        now = utcnow()
        started = as_utc(read.started_at)
        read.answer, read.confidence, read.answered_at = body.answer, body.confidence, now
        read.seconds = round(max(0.0, (now - started).total_seconds()), 3)
        seconds = read.seconds
    core.db.audit(who, "reader_answer", case.study_id, f"reader case {body.case_id[:40]}")
    return {"case_id": body.case_id, "seconds": seconds}


def reader_rows(core: Any) -> list[dict[str, Any]]:
    """Answered reads as rows of the reader CSV."""
    with core.db.session() as s:
        rows = s.execute(select(ReaderRead, ReaderCase.truth).join(ReaderCase, ReaderRead.case_id == ReaderCase.case_id)
                         .where(ReaderRead.answer.is_not(None)).order_by(ReaderRead.reader, ReaderRead.id)).all()
        return [{"reader": r.reader, "case_id": r.case_id, "truth": truth, "answer": r.answer,
                 "confidence": r.confidence, "seconds": r.seconds, "with_ai": int(bool(r.with_ai))}
                for r, truth in rows]


@router.get("/export.csv")
def export_csv(request: Request, who: str = Depends(require_token)) -> Response:
    """CSV ``reader, case_id, truth, answer, confidence, seconds, with_ai`` for ``lesiondx stats readers``."""
    core = request.app.state.core
    rows = reader_rows(core)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    core.db.audit(who, "reader_export", detail=f"{len(rows)} read(s)")
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="reader_study.csv"'})


@router.get("/summary")
def summary(request: Request, who: str = Depends(require_token)) -> dict[str, Any]:
    """Per-reader accuracy and time, κ (readers, and the model as an extra rater), McNemar without vs with AI,
    Mann–Whitney on reading time, the cases where the model and a reader disagree, and each reader's AUC beside
    the model's on the same cases (tasks whose probability is of one answer choice: us-liver, ct-covid)."""
    from .reader_summary import CaseScore, model_answer, summarise

    core = request.app.state.core
    rows = reader_rows(core)
    with core.db.session() as s:
        cases = list(s.scalars(select(ReaderCase)))
        studies = {c.case_id: s.get(Study, c.study_id) for c in cases}
        model, scores = {}, {}
        for case_id, study in studies.items():
            results = study.results if study is not None else []
            choices = _choices_for(core, study)
            model[case_id] = model_answer(results[0].get("label") if results else None, choices)
            positive = model_answer(POSITIVE_CHOICE.get(study.task or "") if study else None, choices)
            p = results[0].get("probability") if len(results) == 1 else None  # one result per case (a series or one image)
            if positive and isinstance(p, (int, float)):
                scores[case_id] = CaseScore(study.task, positive, float(p))
    truths = {c.case_id: c.truth for c in cases}
    core.db.audit(who, "reader_summary", detail=f"{len(rows)} read(s)")
    return {"n_cases": len(cases), **summarise(rows, model, truths, scores=scores)}

"""Reader-study mode: radiologists read a case list blinded, with or without the AI result.

Workflow: an organiser posts the case list (finished studies plus the reference answer) to
``POST /api/reader/cases``; each reader opens ``/reader`` (or calls ``GET /api/reader/next``),
sees one case at a time in a per-reader random order — only the images, plus the AI result when
``with_ai=1`` — and answers with a confidence of 1-5. Reading time is measured by the server from
when the case was handed out to when the answer arrived. ``GET /api/reader/export.csv`` gives the
table ``reader, case_id, truth, answer, confidence, seconds, with_ai`` read by
``lesiondx stats readers --csv FILE``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from .auth import require_token
from .db import ReaderCase, ReaderRead, Study, utcnow

CSV_COLUMNS = ("reader", "case_id", "truth", "answer", "confidence", "seconds", "with_ai")
router = APIRouter(prefix="/api/reader", tags=["reader study"])


class CaseIn(BaseModel):
    """One case of the list: a study id and the reference answer (never shown to readers)."""

    case_id: str = Field(min_length=1, max_length=64)
    study_id: str = Field(min_length=1, max_length=32)
    truth: str = Field(min_length=1, max_length=64)


class CaseList(BaseModel):
    cases: list[CaseIn] = Field(min_length=1, max_length=5000)


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


def _choices(cases: list[ReaderCase]) -> list[str]:
    return sorted({c.truth for c in cases})


@router.post("/cases")
def set_cases(body: CaseList, request: Request, who: str = Depends(require_token)) -> dict[str, Any]:
    """Add or replace cases (by ``case_id``); every study must exist."""
    core = request.app.state.core
    with core.db.session() as s, s.begin():
        missing = [c.study_id for c in body.cases if s.get(Study, c.study_id) is None]
        if missing:
            raise HTTPException(422, f"unknown study id(s): {', '.join(missing[:10])}")
        for position, case in enumerate(body.cases):
            row = s.get(ReaderCase, case.case_id) or ReaderCase(case_id=case.case_id)
            row.study_id, row.truth, row.position = case.study_id, case.truth, position
            s.add(row)
    core.db.audit(who, "reader_cases", detail=f"{len(body.cases)} case(s)")
    return {"cases": len(body.cases)}


@router.get("/next")
def next_case(reader: str, with_ai: bool, request: Request, who: str = Depends(require_token)) -> dict[str, Any]:
    """The reader's next unanswered case in this mode (starts its clock), or ``case_id: null`` when done."""
    core = request.app.state.core
    if not reader or len(reader) > 64 or not all(c.isalnum() or c in "._@-" for c in reader):
        raise HTTPException(422, "reader must be 1-64 letters, digits or ._@-")
    with core.db.session() as s, s.begin():
        cases = list(s.scalars(select(ReaderCase)))
        reads = {r.case_id: r for r in s.scalars(select(ReaderRead).where(ReaderRead.reader == reader,
                                                                            ReaderRead.with_ai == with_ai))}
        done = sum(1 for r in reads.values() if r.answer is not None)
        pending = [c for c in _order(reader, cases) if reads.get(c.case_id) is None or reads[c.case_id].answer is None]
        base = {"reader": reader, "with_ai": with_ai, "total": len(cases), "done": done, "choices": _choices(cases)}
        if not pending:
            return {**base, "case_id": None}
        case = pending[0]
        read = reads.get(case.case_id)
        if read is None:
            s.add(ReaderRead(reader=reader, case_id=case.case_id, with_ai=with_ai, started_at=utcnow()))
        study = s.get(Study, case.study_id)
        payload = _case_payload(study, case.case_id, with_ai)
    core.db.audit(who, "reader_next", study.id if study else None, f"reader case {case.case_id[:40]}")
    return {**base, "case_id": case.case_id, **payload}


def _case_payload(study: Study | None, case_id: str, with_ai: bool) -> dict[str, Any]:
    """Images of a case (by case-scoped URLs that hide the study id); the AI result only in
    ``with_ai`` mode. Never the truth, the study id or patient data."""
    if study is None:
        return {"images": [], "ai": None}
    base = f"/api/reader/cases/{case_id}/files/"
    results = study.results
    images = [base + r["input_preview"] for r in results if r.get("input_preview")]
    ai = None
    if with_ai and results:
        ai = [{"label": r.get("label"), "probability": r.get("probability"), "model_version": r.get("model_version"),
               "overlays": [base + n for n in r.get("overlays") or []]} for r in results]
    return {"images": sorted(set(images)), "ai": ai}


@router.get("/cases/{case_id}/files/{name}")
def case_file(case_id: str, name: str, request: Request, who: str = Depends(require_token)) -> FileResponse:
    """An image of a reader case (input preview or AI overlay) without revealing the study id."""
    core = request.app.state.core
    with core.db.session() as s:
        case = s.get(ReaderCase, case_id[:64])
        study_id = case.study_id if case else None
    path = core.storage.result_file(study_id, name) if study_id else None
    if path is None:
        raise HTTPException(404, f"no file {name!r} for case {case_id!r}")
    return FileResponse(path)


@router.post("/reads")
def submit_read(body: ReadIn, request: Request, who: str = Depends(require_token)) -> dict[str, Any]:
    """Record the answer; ``seconds`` is server time since the case was handed out."""
    core = request.app.state.core
    with core.db.session() as s, s.begin():
        case = s.get(ReaderCase, body.case_id)
        if case is None:
            raise HTTPException(404, f"no case {body.case_id!r}")
        choices = _choices(list(s.scalars(select(ReaderCase))))
        if body.answer not in choices:
            raise HTTPException(422, f"answer must be one of {choices}")
        read = s.scalars(select(ReaderRead).where(ReaderRead.reader == body.reader, ReaderRead.case_id == body.case_id,
                                                  ReaderRead.with_ai == body.with_ai)).first()
        if read is None:
            raise HTTPException(409, "this case was not handed out to this reader in this mode (GET /api/reader/next)")
        if read.answer is not None:
            raise HTTPException(409, "this case is already answered by this reader in this mode")
        now = utcnow()
        started = read.started_at if read.started_at.tzinfo else read.started_at.replace(tzinfo=now.tzinfo)
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

"""What the documents API returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from docdigest.documents.models import Document, DocumentStep


class StepOut(BaseModel):
    step: str
    attempt: int
    job_id: str | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, step: DocumentStep) -> StepOut:
        return cls(
            step=step.step,
            attempt=step.attempt,
            job_id=step.job_id,
            started_at=step.started_at,
            finished_at=step.finished_at,
            error=step.error,
        )


class DocumentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    status: str
    reason: str | None
    note: str | None
    summary: str | None
    summary_source: str | None
    text_chars: int | None
    created_at: datetime
    processed_at: datetime | None
    ready_at: datetime | None
    expires_at: datetime | None
    duplicate: bool = False

    @classmethod
    def of(cls, document: Document, *, duplicate: bool = False) -> DocumentOut:
        return cls(
            id=document.id,
            filename=document.filename,
            content_type=document.content_type,
            size=document.size,
            sha256=document.sha256,
            status=document.status,
            reason=document.failure_reason,
            note=document.note,
            summary=document.summary,
            summary_source=document.summary_source,
            text_chars=document.text_chars,
            created_at=document.created_at,
            processed_at=document.processed_at,
            ready_at=document.ready_at,
            expires_at=document.expires_at,
            duplicate=duplicate,
        )


class DocumentDetail(DocumentOut):
    timeline: list[StepOut]

    @classmethod
    def detail(cls, document: Document) -> DocumentDetail:
        return cls(
            **DocumentOut.of(document).model_dump(),
            timeline=[StepOut.of(step) for step in document.steps],
        )


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    #: Pass as `before_id` for the next (older) page; null on the last page.
    next_before_id: int | None


class UploadResult(BaseModel):
    filename: str
    status_code: int
    detail: str | None = None
    document: DocumentOut | None = None


class UploadResults(BaseModel):
    results: list[UploadResult]

"""Every table, imported in one place so Base.metadata is complete (Alembic, tests)."""

from docdigest.core.db import Base
from docdigest.documents.models import Document, DocumentStep
from docdigest.jobs.models import JobAttempt, JobRun
from docdigest.mail.models import OutboxMessage
from docdigest.users.models import AccessToken, LoginSession, User

__all__ = [
    "AccessToken",
    "Base",
    "Document",
    "DocumentStep",
    "JobAttempt",
    "JobRun",
    "LoginSession",
    "OutboxMessage",
    "User",
]

"""What a running job is handed, and the ids that follow work from request to job to job."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgi_correlation_id import correlation_id
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.retry import will_retry
from docdigest.settings import Settings

T = TypeVar("T")

#: The job whose code is running now; jobs it enqueues record it as their parent.
current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)

#: The HTTP request id that caused the current work (set per request by middleware,
#: and per job from the ledger so chains keep it).
request_id = correlation_id


@dataclass
class JobContext:
    settings: Settings
    job_id: str
    attempt: int
    max_tries: int
    sessionmaker: async_sessionmaker[AsyncSession]
    resources: dict[type[Any], Any] = field(default_factory=dict)
    #: Which series of tries this is: 1, then one more for each operator's requeue.
    series: int = 1
    opened: AsyncSession | None = field(default=None, repr=False)

    @property
    def session(self) -> AsyncSession:
        """The job's session, opened on first use; the wrapper commits it when the job returns."""
        if self.opened is None:
            self.opened = self.sessionmaker()
        return self.opened

    @property
    def requeued(self) -> bool:
        """An operator has requeued this job after it failed or was cancelled."""
        return self.series > 1

    @property
    def is_last_try(self) -> bool:
        return self.attempt >= self.max_tries

    def will_retry(self, exc: BaseException) -> bool:
        """Whether another try follows this one if `exc` ends it (as the runner decides)."""
        return will_retry(exc, self.attempt, self.max_tries)

    def resource(self, kind: type[T]) -> T:
        """A shared object the worker built at startup (mailer, storage, ...)."""
        value = self.resources.get(kind)
        if value is None:
            raise LookupError(f"worker has no {kind.__name__}")
        assert isinstance(value, kind)
        return value

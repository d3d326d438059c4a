"""The workflow layer on Arq: declare jobs, enqueue after commit, retry by policy."""

from docdigest.jobs.context import JobContext
from docdigest.jobs.enqueue import Call, enqueue, enqueue_all
from docdigest.jobs.registry import JobSpec, job
from docdigest.jobs.retry import Permanent, Transient

__all__ = [
    "Call",
    "JobContext",
    "JobSpec",
    "Permanent",
    "Transient",
    "enqueue",
    "enqueue_all",
    "job",
]

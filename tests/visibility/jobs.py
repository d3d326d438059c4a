"""Jobs the visibility tests run on a real worker."""

from __future__ import annotations

from docdigest.jobs import JobContext, Permanent, enqueue, job

#: Numbers `number_job` refuses; the tests clear it to let a requeued job succeed.
refused: set[int] = set()
done: list[int] = []


@job(timeout_s=5, max_tries=1, subject="number:{n}")
async def number_job(jc: JobContext, n: int) -> None:
    if n in refused:
        raise Permanent(f"number {n} refused")
    done.append(n)


@job(timeout_s=5, max_tries=1, subject="number:{n}")
async def chain_job(jc: JobContext, n: int) -> None:
    """The first link of a chain: it enqueues the next job, as the document pipeline does."""
    await enqueue(jc.session, number_job, n=n + 1)


def functions(settings: object) -> list[object]:
    return [spec.arq_function(settings) for spec in (number_job, chain_job)]  # type: ignore[arg-type]

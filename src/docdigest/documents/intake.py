"""Where uploads become documents.

The request checks a received file and moves it into storage; its row and its first
jobs are then written together with whatever other uploads are waiting, all or
nothing, in one transaction (`core/batch.py`), and the jobs pushed to the queue once
it commits. Under load that is most of an upload's database work paid once for many
uploads; a lone upload is written at once, as before. The transaction is two Core
statements on a connection, without a session (`core/rows.py` `insert_with_children`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from docdigest.core.batch import STALLED_S, GroupCommit
from docdigest.core.errors import AppError
from docdigest.documents.received import ReceivedFile
from docdigest.documents.service import Accepted, Stored, add_documents, check_upload
from docdigest.documents.storage import Storage, new_key
from docdigest.jobs.enqueue import push_all
from docdigest.settings import Settings

log = logging.getLogger(__name__)


class Intake:
    """Accepts uploads for one process (the web app keeps one, on `app.state`).

    Without a `queue`, new jobs wait in the ledger for the reconciler to push them.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        queue: ArqRedis | None,
        storage: Storage,
        settings: Settings,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._storage = storage
        self._settings = settings
        # SQLite takes one writer at a time whatever we do. On a server, a spare
        # writer lets one batch go in while another waits on a stalled commit; until
        # then uploads wait for the next batch, so a backlog goes in fewer of them.
        writers = 1 if settings.database_url.startswith("sqlite") else 2
        self._batches: GroupCommit[Stored, Accepted] = GroupCommit(
            self._write, writers=writers, spare_after=STALLED_S
        )

    async def accept(self, user_id: int, file: ReceivedFile) -> Accepted:
        """Store a received file as a new document and queue its processing.

        The same bytes uploaded again by the same user return the existing document.
        The temporary file is consumed (moved into storage, or removed when it is
        refused or cannot be stored) in every case, and a stored copy that no new
        document took is removed again.
        """
        try:
            content_type = await check_upload(file)
            key = new_key("originals")
            # Stored before the row is written: on SQLite the insert takes the
            # database's write lock until commit, and no upload should wait on a move.
            await self._storage.save(key, file.path)
        except BaseException:
            file.path.unlink(missing_ok=True)
            raise
        stored = Stored(
            user_id=user_id,
            filename=file.filename,
            content_type=content_type,
            size=file.size,
            sha256=file.sha256,
            key=key,
        )
        return await self._batches.submit(stored)

    async def wait_idle(self) -> None:
        await self._batches.wait_idle()

    async def _write(self, uploads: Sequence[Stored]) -> list[Accepted | AppError]:
        try:
            async with self._engine.begin() as conn:
                outcomes, jobs = await add_documents(conn, self._settings, uploads)
        except Exception:
            # A failed batch is written again upload by upload; a lone upload that
            # fails has failed for good, and its stored copy goes.
            if len(uploads) == 1:
                await self._discard(uploads[0].key)
            raise
        if self._queue is not None:
            await push_all(self._queue, jobs)
        for upload, outcome in zip(uploads, outcomes, strict=True):
            if not isinstance(outcome, Accepted) or outcome.duplicate:
                await self._discard(upload.key)
        return outcomes

    async def _discard(self, key: str) -> None:
        """Remove a stored copy no document holds. Best effort: the rows are already
        decided, and a copy left behind is only wasted space."""
        try:
            await self._storage.delete(key)
        except Exception:
            log.warning("could not remove an unclaimed upload", extra={"storage_key": key})

"""Where uploads become documents.

The request checks a received file and moves it into storage; its row, its first
jobs and their push to the queue are then written together with whatever other
uploads are waiting, in one transaction (`core/batch.py`). Under load that is most
of an upload's database work paid once for many uploads; a lone upload is written
at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.batch import STALLED_S, GroupCommit
from docdigest.core.db import commit
from docdigest.core.errors import AppError
from docdigest.documents.service import Accepted, Stored, add_documents, check_upload
from docdigest.documents.storage import Storage, new_key
from docdigest.documents.upload import ReceivedFile
from docdigest.settings import Settings

log = logging.getLogger(__name__)


class Intake:
    """Accepts uploads for one process (the web app keeps one, on `app.state`)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], storage: Storage, settings: Settings
    ) -> None:
        self._sessionmaker = sessionmaker
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
            async with self._sessionmaker() as session:
                outcomes = await add_documents(session, self._settings, uploads)
                await commit(session)
        except Exception:
            # A failed batch is written again upload by upload; a lone upload that
            # fails has failed for good, and its stored copy goes.
            if len(uploads) == 1:
                await self._discard(uploads[0].key)
            raise
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

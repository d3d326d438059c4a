"""The garbage collector in long-running processes.

A web or worker process holds some 200,000 objects from its imports and setup
(modules, classes, routes, schemas, the ORM's mappers) that live as long as the
process. CPython's full collections walk all of them every time, and on a small
virtual machine one such pass stopped the process for about 100 ms, stalling every
request or job in flight at once. Frozen after startup, they are left out of every
later pass, which then only walks what the process made since (a few milliseconds).
The extraction fork server freezes its converters the same way before it forks,
so its children, which make many objects while parsing, do not walk them either.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect the garbage of startup, then keep every object alive now out of future
    collections.

    Call it once, at a process's entry point, after the app is built. Objects frozen
    here are still freed when their last reference goes; only a reference cycle among
    them would stay (so never call it in a process that builds apps over and over,
    such as the test suite).
    """
    gc.collect()
    gc.freeze()

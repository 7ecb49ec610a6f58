"""For child processes of the kill/resume tests: stop a run right after its first stored batch.

:func:`pause_after_first_batch` patches :meth:`ResultStore.write_many` so that, once the first
batch of rows is committed, the process touches ``ready`` and sleeps until it is killed: the
test's signal then always arrives mid-run, however fast or slow the machine.
"""

from __future__ import annotations

import pathlib
import time


def pause_after_first_batch(ready: str) -> None:
    from bounds.compare.store import ResultStore

    write = ResultStore.write_many

    def paused_write(self, rows):  # noqa: ANN001
        write(self, rows)
        pathlib.Path(ready).touch()
        while True:
            time.sleep(0.1)

    ResultStore.write_many = paused_write

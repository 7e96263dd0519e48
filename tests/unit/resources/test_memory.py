"""freeze_long_lived: a no-op unless the process enabled it; then the survivors are frozen."""

from __future__ import annotations

import gc

from datapipelines.resources import memory


def test_freezing_is_the_process_owners_choice(monkeypatch) -> None:
    monkeypatch.setattr(memory, "_enabled", False)
    before = gc.get_freeze_count()
    memory.freeze_long_lived("test")
    assert gc.get_freeze_count() == before
    memory.enable()
    try:
        memory.freeze_long_lived("test")
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()

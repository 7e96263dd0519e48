"""The scale harness (tests/scale, `make bench-scale`) at a small size in `make test`: 400
connections in 4 namespaces served by 2 operator shards, a burst of 80 `run_async` whose pods
"run" on kwok's fake nodes. Asserts only correctness — no run lost, none duplicated, every task
answers — never a timing: the figures are the benchmark's to print (docs/scale.md)."""

from __future__ import annotations

import uuid

import pytest

from tests.scale.harness import ScaleParams, run
from tests.scale.report import lines

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


async def test_no_run_lost_or_duplicated_and_every_task_answers() -> None:
    params = ScaleParams(
        tag=f"t{uuid.uuid4().hex[:4]}",
        connections=400,
        namespaces=4,
        shards=2,
        burst=80,
        burst_seconds=4,
        run_seconds=3,
        samples=20,
        steady_rate=0,
        finish_timeout=240,
    )
    figures = await run(params)
    print("\n".join(lines(figures)))

    assert figures.tasks == params.burst
    assert figures.lost == [], figures.lost
    assert figures.duplicated == [], figures.duplicated
    assert figures.answered == figures.tasks
    assert figures.succeeded == figures.tasks, f"{figures.failed} runs failed"
    assert figures.dispatch["burst"].n == params.burst  # every run got its Job

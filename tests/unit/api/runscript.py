"""Scripted runs for the fake store: what the operator and the runner would write, step by step.

    script_runs(fake, TYPICAL)   # every run the API creates goes Running, extracts, loads, ends

The steps play on the store's own event loop (the API server's, when it runs in a thread), at
`after` seconds from the previous step, from the moment the run is created.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import PipelineRun
from tests.unit.api.fakekube import T0, FakeStore


@dataclass(frozen=True)
class Step:
    after: float
    status: dict[str, Any] = field(default_factory=dict)
    finish: str | None = None  # a terminal phase: finish_run(phase, **result)
    result: dict[str, Any] = field(default_factory=dict)


def progress(stage: str, extracted: int, **tables: int) -> dict[str, Any]:
    return {
        "progress": {
            "stage": stage,
            "recordsExtracted": extracted,
            "tables": tables,
            "updatedAt": T0,
        }
    }


def typical(
    gap: float = 0.15, phase: str = "Succeeded", rows: int = 1500, **result: Any
) -> list[Step]:
    """Queued → Running → extract (two tables) → normalize → load → the end."""
    half = rows // 2
    return [
        Step(gap, {"phase": "Running", "startTime": T0, "attempts": 1}),
        Step(gap, progress("extract", half, items=half)),
        Step(gap, progress("extract", rows, items=rows - 100, users=100)),
        Step(gap, progress("normalize", rows, items=rows - 100, users=100)),
        Step(gap, progress("load", rows, items=rows - 100, users=100)),
        Step(
            gap,
            finish=phase,
            result={
                "rowsInserted": rows if phase == "Succeeded" else 0,
                "recordsReported": rows,
                "progressCounts": {
                    "extract": {"items": rows - 100, "users": 100},
                    "normalize": {"items": rows - 100, "users": 100},
                },
                **result,
            },
        ),
    ]


def play(fake: FakeStore, name: str, steps: list[Step], namespace: str | None = None) -> None:
    """Schedule `steps` for run `name` on the running loop."""
    loop = asyncio.get_running_loop()
    at = 0.0
    for step in steps:
        at += step.after
        if step.finish:
            loop.call_later(
                at, functools.partial(_finish, fake, name, step.finish, step.result, namespace)
            )
        else:
            loop.call_later(at, functools.partial(_update, fake, name, step.status, namespace))


def script_runs(fake: FakeStore, steps: list[Step]) -> None:
    """Every run created from now on plays `steps`."""
    fake.on_create_run = lambda run: play(
        fake, run["metadata"]["name"], steps, run["metadata"]["namespace"]
    )


def _run(fake: FakeStore, name: str, namespace: str | None) -> PipelineRun | None:
    return fake.catalog.runs.get((namespace or fake.namespace, name))


def _update(
    fake: FakeStore, name: str, status: dict[str, Any], namespace: str | None = None
) -> None:
    if _run(fake, name, namespace) is not None:
        fake.update_run_status(name, namespace=namespace, **status)


def _finish(
    fake: FakeStore,
    name: str,
    phase: str,
    result: dict[str, Any],
    namespace: str | None = None,
) -> None:
    run = _run(fake, name, namespace)
    if run is not None and not run.terminal:
        fake.finish_run(name, phase, namespace=namespace, **result)


def cancel_ends_runs(fake: FakeStore, after: float = 0.05) -> None:
    """As the operator does: a run whose Job the API deleted on cancel ends Cancelled."""
    delete_run_job = fake.delete_run_job

    async def deleting(run: PipelineRun) -> bool:
        deleted = await delete_run_job(run)
        asyncio.get_running_loop().call_later(
            after,
            functools.partial(
                _finish, fake, run.name, "Cancelled", {"error": "cancelled by user"}, run.namespace
            ),
        )
        return deleted

    fake.delete_run_job = deleting  # type: ignore[method-assign]


def script_batches(fake: FakeStore, steps: list[Step]) -> None:
    """As the operator does: every batch created from now on runs its connections one after
    another, each run playing `steps`; a cancel request stops the batch. The batch's status
    goes through the fake's catalog as the operator's status writes would."""
    create_batch = fake.create_batch

    async def creating(namespace: str, manifest: dict[str, Any]) -> PipelineBatch:
        batch = await create_batch(namespace, manifest)
        asyncio.get_running_loop().create_task(
            _drive_batch(fake, batch.metadata.name, namespace, list(batch.spec.connections), steps)
        )
        return batch

    fake.create_batch = creating  # type: ignore[method-assign]


def _cancel_requested(fake: FakeStore, name: str, namespace: str) -> bool:
    batch = fake.batch_obj(name, namespace)
    return bool(batch and batch["spec"].get("cancelRequested"))


async def _drive_batch(
    fake: FakeStore, name: str, namespace: str, connections: list[str], steps: list[Step]
) -> None:
    runs: list[dict[str, Any]] = []
    completed: list[str] = []
    fake.update_batch_status(
        name, namespace=namespace, state="running", startedAt=T0, completed=[], runs=[]
    )
    for connection in connections:
        if _cancel_requested(fake, name, namespace):
            break
        run_name = f"{connection}-b{name.rsplit('-', 1)[-1]}"
        fake.add_run(
            run_name, connection, "Queued", batch=name, trigger="batch", namespace=namespace
        )
        runs.append({"connection": connection, "runName": run_name, "phase": "Queued"})
        fake.update_batch_status(name, namespace=namespace, current=connection, runs=runs)
        for step in steps:
            await asyncio.sleep(step.after)
            if step.finish:
                _finish(fake, run_name, step.finish, step.result, namespace)
            else:
                _update(fake, run_name, step.status, namespace)
            run = _run(fake, run_name, namespace)
            phase = run.phase if run is not None else None
            runs[-1]["phase"] = phase.value if phase is not None else None
            fake.update_batch_status(name, namespace=namespace, runs=runs)
            if run is not None and run.terminal:
                break
        completed.append(connection)
        fake.update_batch_status(name, namespace=namespace, completed=completed)
    fake.update_batch_status(
        name,
        namespace=namespace,
        state="cancelled" if _cancel_requested(fake, name, namespace) else "finished",
        current=None,
        finishedAt="2026-11-30T08:00:09Z",
    )

"""Reconcile decisions of one connection key: ``gather`` + ``decide`` over an in-memory store at a
fixed ``now`` (no cluster, no I/O). Each test builds the apiserver objects, decides, and reads
the actions; the World of opkit applies them to decide again on the state after the writes."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.operator.config import Settings
from datapipelines.operator.jobs import render_job
from datapipelines.operator.reconcile.actions import (
    CreateRun,
    DeleteJob,
    DeleteRun,
    LabelRun,
    PatchConnectionStatus,
    PatchRunStatus,
    StartRun,
)
from datapipelines.resources import LABEL_BATCH, LABEL_CONNECTION, LABEL_TRIGGER
from datapipelines.resources.manifests import scheduled_run_name
from datapipelines.resources.podcontract import WAREHOUSE_DEFAULT_FILE
from datapipelines.resources.run import RunPhase
from tests.unit.operator.opkit import (
    NOW,
    NS,
    World,
    at,
    batch_body,
    condition,
    connection,
    connection_body,
    decide_connection,
    describe,
    duckdb_on_volume,
    finished_status,
    job_body,
    of_type,
    pod_body,
    postgres_destination,
    ready_status,
    rest_spec,
    run,
    run_body,
    run_patches,
    running_status,
    settings,
    store_of,
    ts,
)

READY = ready_status()


def ready_conn(name: str = "demo", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("status", READY)
    return connection_body(name, **kwargs)


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def message_of(patch: PatchRunStatus) -> str:
    return str(condition(patch.patch)["message"])


def running(name: str = "demo-aaaaa", conn: str = "demo", **kwargs: Any) -> dict[str, Any]:
    """A run whose Job was created (status as the executor wrote it)."""
    kwargs.setdefault("created", -100)
    kwargs.setdefault("rv", 90)
    return run_body(name, conn, status=running_status(name), **kwargs)


# --------------------------------------------------------------------------- starting


def test_first_pending_run_starts_with_its_rendered_job() -> None:
    d = decide_connection(ready_conn(), run_body())
    start = only(d.actions)
    assert isinstance(start, StartRun)
    assert start.run.name == "demo-aaaaa" and start.connection.name == "demo"
    conn, pending = connection(status=READY), run()
    assert conn.spec is not None
    assert start.manifest == render_job("demo", conn.spec, pending, settings())
    owner = only(start.manifest["metadata"]["ownerReferences"])
    assert owner["uid"] == "uid-demo-aaaaa" and owner["controller"] is True
    assert d.requeue_after is None and d.wake == set()


def test_a_new_connection_is_marked_ready_before_its_first_run_starts() -> None:
    d = decide_connection(connection_body(), run_body())
    assert describe(d) == [("PatchConnectionStatus", "demo"), ("StartRun", "demo-aaaaa")]
    patch = d.actions[0].patch
    ready = condition(patch, "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Valid", 1)
    assert patch["observedGeneration"] == 1


# --------------------------------------------------------------------------- concurrency policy


@pytest.mark.parametrize(
    ("first", "extra"),
    [
        pytest.param(running("demo-first"), [job_body("demo-first", active=1)], id="running"),
        pytest.param(run_body("demo-first", created=-100, rv=90), [], id="pending-and-started"),
    ],
)
def test_forbid_fails_the_second_run_naming_the_active_one(
    first: dict[str, Any], extra: list[dict[str, Any]]
) -> None:
    second = run_body("demo-second", created=-10, rv=120)
    d = decide_connection(ready_conn(), first, *extra, second)
    failed = only([p for p in run_patches(d, "demo-second")])
    assert failed.phase is RunPhase.FAILED and failed.precondition is True
    assert message_of(failed).startswith("ConcurrencyForbidden: run demo-first ")
    assert "Forbid" in message_of(failed)
    assert failed.patch["result"]["success"] is False
    assert failed.patch["completionTime"] == ts(NOW)
    assert all(s.run.name != "demo-second" for s in of_type(d, StartRun))
    assert failed.events and failed.events[0].type == "Warning"


def test_queue_waits_naming_the_blocker() -> None:
    d = decide_connection(
        ready_conn(concurrencyPolicy="Queue"),
        running("demo-first"),
        job_body("demo-first", active=1),
        pod_body("demo-first", phase="Running", running=True),
        run_body("demo-second", created=-10, rv=120),
    )
    queued = only(run_patches(d, "demo-second"))
    assert queued.phase is RunPhase.QUEUED and queued.precondition is False
    assert "waiting for run demo-first" in message_of(queued)
    assert "Queue" in message_of(queued)
    assert queued.patch["queuedAt"] == ts(-10) and queued.patch["sequence"] == 120
    assert [e.reason for e in queued.events] == ["Queued"]
    assert not of_type(d, StartRun)


@pytest.mark.parametrize(
    ("runs", "first"),
    [
        pytest.param(
            [
                run_body("demo-zzzzz", created=-30, rv=100),
                run_body("demo-aaaaa", created=-30, rv=101),
            ],
            "demo-zzzzz",
            id="same-second-by-resourceVersion-not-name",
        ),
        pytest.param(
            [
                run_body(
                    "demo-aaaaa", created=-30, rv=500, phase="Queued", status={"sequence": 90}
                ),
                run_body("demo-zzzzz", created=-30, rv=101),
            ],
            "demo-aaaaa",
            id="status.sequence-before-a-later-resourceVersion",
        ),
        pytest.param(
            [
                run_body("demo-aaaaa", created=-20, rv=100),
                run_body("demo-zzzzz", created=-40, rv=900),
            ],
            "demo-zzzzz",
            id="creationTimestamp-first",
        ),
    ],
)
def test_queue_order_is_request_order_not_name(runs: list[dict[str, Any]], first: str) -> None:
    d = decide_connection(ready_conn(concurrencyPolicy="Queue"), *runs)
    assert only(of_type(d, StartRun)).run.name == first
    waiting = only([p for p in run_patches(d) if p.phase is RunPhase.QUEUED])
    assert waiting.run.name != first and first in message_of(waiting)


def test_queue_drains_one_run_at_a_time_in_request_order() -> None:
    w = World(
        ready_conn(concurrencyPolicy="Queue"),
        run_body("demo-ccccc", created=-30, rv=100),
        run_body("demo-bbbbb", created=-30, rv=101),
        run_body("demo-aaaaa", created=-30, rv=102),
    )
    started = []
    for _ in range(3):
        w.settle()
        (name,) = [n for n in w.names("PipelineRun") if w.run_view(n).phase is RunPhase.RUNNING]
        started.append(name)
        w.complete_job(name)
    w.settle()
    assert started == ["demo-ccccc", "demo-bbbbb", "demo-aaaaa"]
    assert all(w.run_view(n).phase is RunPhase.SUCCEEDED for n in started)


def test_replace_cancels_older_pending_and_stops_the_running_one() -> None:
    old_job = job_body("demo-run", active=1)
    d = decide_connection(
        ready_conn(concurrencyPolicy="Replace"),
        running("demo-run"),
        old_job,
        pod_body("demo-run", phase="Running", running=True),
        run_body("demo-older", created=-30, rv=110),
        run_body("demo-newest", created=-10, rv=120),
    )
    older = only(run_patches(d, "demo-older"))
    assert older.phase is RunPhase.CANCELLED and older.precondition
    assert message_of(older) == "Replaced: replaced by the newer run demo-newest"
    assert older.delete_job is None
    stopped = [p for p in run_patches(d, "demo-run") if p.phase.terminal]
    assert only(stopped).phase is RunPhase.CANCELLED and stopped[0].precondition
    assert message_of(stopped[0]).startswith("Replaced: ")
    assert stopped[0].delete_job is not None and stopped[0].delete_job.uid == "uid-job-demo-run"
    newest = only(run_patches(d, "demo-newest"))
    assert newest.phase is RunPhase.QUEUED and "demo-run" in message_of(newest)
    assert not of_type(d, StartRun)
    assert d.requeue_after == 1

    # once the replaced run has ended and its Job is gone, the newest starts
    d = decide_connection(
        ready_conn(concurrencyPolicy="Replace"),
        run_body("demo-run", created=-100, rv=130, status=finished_status("Cancelled")),
        run_body("demo-older", created=-30, rv=131, status=finished_status("Cancelled")),
        run_body("demo-newest", created=-10, rv=132, phase="Queued", status={"sequence": 120}),
    )
    assert only(of_type(d, StartRun)).run.name == "demo-newest"


def replace_with_new_pod_state() -> list[dict[str, Any]]:
    """Replace while the running run's pod state changed (attempt 2 now runs)."""
    status = running_status("demo-run", attempts=1)
    status["conditions"] = [
        {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "attempt 1: runner running",
            "lastTransitionTime": ts(-40),
            "observedGeneration": 1,
        }
    ]
    return [
        ready_conn(concurrencyPolicy="Replace"),
        run_body("demo-run", created=-100, rv=90, status=status),
        job_body("demo-run", active=1, failed_pods=1),
        pod_body("demo-run", name="p1", created=-45, phase="Failed", terminated={"exitCode": 1}),
        pod_body("demo-run", name="p2", created=-20, phase="Running", running=True),
        run_body("demo-newest", created=-10, rv=120),
    ]


@pytest.mark.parametrize(
    ("objects", "run_name"),
    [
        pytest.param(replace_with_new_pod_state(), "demo-run", id="replace"),
        pytest.param(
            [ready_conn(runner={"image": "evil.example/runner:1"}), run_body(bare=True)],
            "demo-aaaaa",
            id="hand-made-run-of-an-invalid-connection",
        ),
        pytest.param([run_body(bare=True, cancel=True)], "demo-aaaaa", id="hand-made-cancelled"),
    ],
)
def test_a_terminal_write_is_the_only_write_to_its_run_in_a_decision(
    objects: list[dict[str, Any]], run_name: str
) -> None:
    w = World(*objects)
    d = w.step()
    writes = [a for a in describe(d) if len(a) > 1 and a[1] == run_name]
    assert any(len(a) == 3 and RunPhase(a[2]).terminal for a in writes), writes
    assert len(writes) == 1, writes
    assert w.conflicts == []


def test_a_run_made_by_hand_gets_the_connection_and_trigger_labels() -> None:
    d = decide_connection(ready_conn(), run_body(bare=True))
    (label,) = [a for a in d.actions if isinstance(a, LabelRun)]
    assert label.labels == {LABEL_CONNECTION: "demo", LABEL_TRIGGER: "api"}
    assert d.actions.index(label) < d.actions.index(only(of_type(d, StartRun)))
    w = World(ready_conn(), run_body(bare=True))
    w.settle()
    assert w.get("PipelineRun", "demo-aaaaa")["metadata"]["labels"][LABEL_CONNECTION] == "demo"


# --------------------------------------------------------------------------- cancel


@pytest.mark.parametrize(
    "objects",
    [
        pytest.param([run_body(cancel=True)], id="spec.cancelRequested"),
        pytest.param(
            [run_body(batch="b1"), batch_body("b1", ["demo"], cancel=True)],
            id="its-batch-is-cancel-requested",
        ),
    ],
)
@pytest.mark.parametrize(
    "conn",
    [
        pytest.param(ready_conn(), id="valid-connection"),
        pytest.param(ready_conn(runner={"image": "evil.example/runner:1"}), id="invalid"),
        pytest.param(None, id="missing-connection"),
    ],
)
def test_cancel_requested_pending_run_is_cancelled_without_a_job(
    objects: list[dict[str, Any]], conn: dict[str, Any] | None
) -> None:
    d = decide_connection(*([conn] if conn else []), *objects)
    cancelled = only(run_patches(d))
    assert cancelled.phase is RunPhase.CANCELLED and cancelled.precondition
    assert message_of(cancelled) == "CancelRequested: cancelled before it started"
    assert condition(cancelled.patch)["status"] == "False"
    assert not of_type(d, StartRun) and not of_type(d, DeleteJob)


@pytest.mark.parametrize(
    "cancel",
    [
        pytest.param({"cancel": True}, id="spec.cancelRequested"),
        pytest.param({"batch": "b1"}, id="batch-cancel"),
    ],
)
def test_cancel_while_the_job_runs_deletes_it_then_ends_cancelled(cancel: dict[str, Any]) -> None:
    conn = ready_conn()
    batch = [batch_body("b1", ["demo"], cancel=True)] if "batch" in cancel else []
    the_run = running(**cancel)
    pod = pod_body(phase="Running", running=True)

    d = decide_connection(conn, the_run, job_body(active=1), pod, *batch)
    delete = only(of_type(d, DeleteJob))
    assert delete.job.uid == "uid-job-demo-aaaaa"
    assert all(not p.phase.terminal for p in run_patches(d))
    assert message_of(only(run_patches(d))) == "cancel requested: deleting the Job"

    # the Job is being deleted: no second delete, still Running
    d = decide_connection(conn, the_run, job_body(active=1, deleting=True), pod, *batch)
    assert not of_type(d, DeleteJob)
    assert all(not p.phase.terminal for p in run_patches(d))

    # the Job is gone: Cancelled
    d = decide_connection(conn, the_run, *batch)
    ended = only(run_patches(d))
    assert ended.phase is RunPhase.CANCELLED and ended.precondition
    assert ended.patch["result"]["success"] is False


# --------------------------------------------------------------------------- the end of a run


def test_completed_job_ends_the_run_and_the_connection_last_run_comes_first() -> None:
    message = '{"success": true, "rowsInserted": 7, "durationMs": 4000, "loadId": "L1"}'
    d = decide_connection(
        ready_conn(),
        running(),
        job_body(complete=True, succeeded=1, finished=-5),
        pod_body(phase="Succeeded", terminated={"exitCode": 0, "message": message}),
    )
    assert describe(d) == [
        ("PatchConnectionStatus", "demo"),
        ("PatchRunStatus", "demo-aaaaa", "Succeeded"),
    ]
    conn_patch, run_patch = d.actions
    assert isinstance(conn_patch, PatchConnectionStatus) and isinstance(run_patch, PatchRunStatus)
    assert run_patch.precondition is True
    assert run_patch.patch["completionTime"] == ts(-5)
    assert run_patch.patch["reason"] == "Completed"
    assert run_patch.patch["result"]["rowsInserted"] == 7
    assert run_patch.patch["result"]["source"] == "TerminationMessage"
    cond = condition(run_patch.patch)
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded")
    assert conn_patch.patch == {
        "lastRunAt": ts(-50),
        "lastRunSuccess": True,
        "lastRunError": None,
        "lastRunDurationMs": 4000,
        "lastRunAttempts": 1,
        "lastRunName": "demo-aaaaa",
        "lastSuccessTime": ts(-5),  # when it ended
    }
    assert [e.reason for e in conn_patch.events] == ["RunSucceeded"]


def test_an_older_run_ending_never_replaces_a_newer_last_run() -> None:
    status = ready_status(lastRunAt=ts(-20), lastRunName="demo-newer", lastRunSuccess=True)
    d = decide_connection(
        ready_conn(status=status),
        running(),  # started at -50, before the recorded last run
        job_body(failed=("BackoffLimitExceeded", "Job has reached the specified backoff limit")),
    )
    assert describe(d) == [("PatchRunStatus", "demo-aaaaa", "Failed")]


RUNNER_OK = {"success": True, "rowsInserted": 11, "durationMs": 900}
RUNNER_FAILED = {"success": False, "error": "source unreachable", "durationMs": 300}


def term(exit_code: int, message: str = "") -> dict[str, Any]:
    return {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "message": message,
    }


@pytest.mark.parametrize(
    ("status", "job_kw", "pods", "phase", "expect"),
    [
        pytest.param(
            {"runnerResult": RUNNER_OK},
            {"complete": True, "succeeded": 1},
            [term(0, '{"success": true, "rowsInserted": 99}')],
            RunPhase.SUCCEEDED,
            {"rowsInserted": 11, "source": "Runner"},
            id="runnerResult-first",
        ),
        pytest.param(
            {},
            {"complete": True, "succeeded": 1, "failed_pods": 1},
            [
                term(1, '{"success": false, "error": "boom"}'),
                term(0, '{"success": true, "rowsInserted": 5}'),
            ],
            RunPhase.SUCCEEDED,
            {"rowsInserted": 5, "source": "TerminationMessage", "error": None},
            id="newest-pod-termination-message",
        ),
        pytest.param(
            {"runnerResult": RUNNER_FAILED},
            {"complete": True, "succeeded": 1, "failed_pods": 1},
            [term(1), term(0, '{"success": true, "rowsInserted": 3}')],
            RunPhase.SUCCEEDED,
            {"success": True, "rowsInserted": 3, "source": "TerminationMessage", "error": None},
            id="earlier-failed-attempt-not-used-when-the-job-succeeded",
        ),
        pytest.param(
            {"runnerResult": RUNNER_FAILED},
            {"complete": True, "succeeded": 1, "failed_pods": 1},
            [term(1), term(0)],
            RunPhase.SUCCEEDED,
            {"success": True, "source": "Operator", "error": None},
            id="earlier-failed-attempt-not-used-even-without-another-result",
        ),
        pytest.param(
            {},
            {
                "failed": ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                "failed_pods": 3,
            },
            [term(1, "Traceback: KeyError 'x'")],
            RunPhase.FAILED,
            {
                "success": False,
                "source": "Operator",
                "error": "BackoffLimitExceeded: Job has reached the specified backoff limit "
                "(ExitCode1: runner exited with code 1: Traceback: KeyError 'x')",
            },
            id="job-failure-reason-last",
        ),
        pytest.param(
            {"runnerResult": RUNNER_FAILED},
            {"failed": ("PodFailurePolicy", "Container runner exited with 2"), "failed_pods": 1},
            [term(2)],
            RunPhase.FAILED,
            {"success": False, "source": "Runner", "error": "source unreachable"},
            id="failed-job-with-the-runner-error",
        ),
    ],
)
def test_result_precedence(
    status: dict[str, Any],
    job_kw: dict[str, Any],
    pods: list[dict[str, Any]],
    phase: RunPhase,
    expect: dict[str, Any],
) -> None:
    pod_bodies = [
        pod_body(name=f"demo-aaaaa-p{i}", created=-45 + i, phase="Failed", terminated=t)
        for i, t in enumerate(pods)
    ]
    st = running_status()
    st.update(status)
    d = decide_connection(
        ready_conn(),
        run_body(created=-100, rv=90, status=st),
        job_body(**job_kw),
        *pod_bodies,
    )
    ended = only([p for p in run_patches(d) if p.phase.terminal])
    assert ended.phase is phase
    result = ended.patch["result"]
    assert {k: result[k] for k in expect} == expect


def test_job_deleted_by_someone_else_fails_the_run() -> None:
    d = decide_connection(ready_conn(), running())
    ended = only(run_patches(d))
    assert ended.phase is RunPhase.FAILED and ended.precondition
    assert message_of(ended).startswith("JobDeleted: ")
    assert ended.patch["result"]["error"].startswith("JobDeleted: ")


def test_job_gone_after_the_runner_reported_keeps_its_result() -> None:
    st = running_status(runnerResult=RUNNER_OK)
    d = decide_connection(ready_conn(), run_body(created=-100, rv=90, status=st))
    ended = only(run_patches(d))
    assert ended.phase is RunPhase.SUCCEEDED
    assert ended.patch["result"]["rowsInserted"] == 11


@pytest.mark.parametrize(
    ("pod_kw", "why"),
    [
        pytest.param(
            {"waiting": ("ImagePullBackOff", "Back-off pulling image")},
            "ImagePullBackOff: Back-off pulling image",
            id="ImagePullBackOff",
        ),
        pytest.param(
            {"unschedulable": "0/3 nodes are available: 3 Insufficient memory."},
            "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
            id="unschedulable",
        ),
        pytest.param(
            {"waiting": ("CreateContainerConfigError", 'secret "pg" not found')},
            'CreateContainerConfigError: secret "pg" not found',
            id="CreateContainerConfigError",
        ),
        pytest.param(None, "the pod was not created", id="no-pod"),
    ],
)
def test_a_stuck_pod_fails_the_run_after_start_timeout(pod_kw: dict | None, why: str) -> None:
    conn = ready_conn(startTimeoutSeconds=120)
    objects = [running(), job_body(active=1, created=-50)]
    if pod_kw is not None:
        objects.append(pod_body(created=-45, **pod_kw))
    deadline = (-45 if pod_kw is not None else -50) + 120

    d = decide_connection(conn, *objects)
    waiting = only(run_patches(d))
    assert waiting.phase is RunPhase.RUNNING
    if pod_kw is not None:
        assert why in message_of(waiting)
    assert not of_type(d, DeleteJob)
    assert d.requeue_after == pytest.approx(deadline)

    d = decide_connection(conn, *objects, now=at(deadline - 1))
    assert d.requeue_after == pytest.approx(1)
    assert all(not p.phase.terminal for p in run_patches(d))

    d = decide_connection(conn, *objects, now=at(deadline))
    failed = only(run_patches(d))
    assert failed.phase is RunPhase.FAILED and failed.precondition
    text = message_of(failed)
    assert text.startswith("PodNotStarted: ") and "120 s (startTimeoutSeconds)" in text
    assert text.endswith(why)
    assert failed.delete_job is not None and failed.delete_job.name == "demo-aaaaa"


def test_a_pod_stuck_without_a_status_reason_is_explained_by_its_newest_warning() -> None:
    """A Secret volume that does not exist: the pod stays Pending with no reason in its status;
    the kubelet says why only in an Event (FailedMount). The run is failed naming it."""
    from datapipelines.operator.executor import newest_warning
    from datapipelines.operator.reconcile import connection as connection_reconcile
    from datapipelines.operator.reconcile.actions import ReadPodWarning

    conn = ready_conn(startTimeoutSeconds=120)
    objects = [conn, running(), job_body(active=1, created=-50), pod_body(created=-45)]
    store = store_of(*objects)
    deadline = at(-45 + 120)
    d = connection_reconcile.decide(
        connection_reconcile.gather(store, NS, "demo"), settings(), deadline
    )
    (read,) = of_type(d, ReadPodWarning)
    assert all(not p.phase.terminal for p in run_patches(d)), "not failed before it is read"
    events = [
        {"reason": "FailedScheduling", "message": "old", "lastTimestamp": "2026-03-02T07:00:00Z"},
        {
            "reason": "FailedMount",
            "message": 'MountVolume.SetUp failed for volume "secret-0" : secret "pg" not found',
            "lastTimestamp": "2026-03-02T07:01:00Z",
        },
    ]
    store.remember_pod_warning(read.pod.uid, newest_warning(events))
    d = connection_reconcile.decide(
        connection_reconcile.gather(store, NS, "demo"), settings(), deadline
    )
    failed = only(run_patches(d))
    assert failed.phase is RunPhase.FAILED and not of_type(d, ReadPodWarning)
    assert message_of(failed).endswith(
        'FailedMount: MountVolume.SetUp failed for volume "secret-0" : secret "pg" not found'
    )
    assert failed.patch["reason"] == "SecretNotFound"
    store.remember_pod_warning(read.pod.uid, "")  # no event: what the pod's status says
    d = connection_reconcile.decide(
        connection_reconcile.gather(store, NS, "demo"), settings(), deadline
    )
    failed = only(run_patches(d))
    assert message_of(failed).endswith("the pod is Pending")
    assert failed.patch["reason"] == "PodNotStarted"
    assert newest_warning([]) == ""


def test_a_started_pod_is_not_held_to_the_start_timeout() -> None:
    conn = ready_conn(startTimeoutSeconds=10)
    d = decide_connection(
        conn, running(), job_body(active=1), pod_body(phase="Running", running=True)
    )
    assert message_of(only(run_patches(d))) == "attempt 1"
    assert d.requeue_after is None and not of_type(d, DeleteJob)


# --------------------------------------------------------------------------- missing connection


CONNECTION_GRACE_SECONDS = Settings().connection_grace_seconds


def test_run_of_a_missing_connection_waits_then_fails() -> None:
    d = decide_connection(run_body(created=-10))
    assert d.actions == []
    assert d.requeue_after == pytest.approx(CONNECTION_GRACE_SECONDS - 10)

    d = decide_connection(run_body(created=-CONNECTION_GRACE_SECONDS))
    failed = only(run_patches(d))
    assert failed.phase is RunPhase.FAILED and failed.precondition
    assert message_of(failed) == (
        "ConnectionNotFound: PipelineConnection 'demo' does not exist in namespace ns1"
    )


# --------------------------------------------------------------------------- unrunnable connection


UNRUNNABLE = [
    pytest.param(
        {},
        {"warehouse_claim": ""},
        "WarehouseNotConfigured",
        ["warehouse.persistence.enabled", "spec.destination.duckdb"],
        id="warehouse-not-configured",
    ),
    pytest.param(
        {"runner": {"image": "evil.example/runner:1"}},
        {},
        "SandboxViolation",
        ["spec.runner.image", "sandbox.allowedImages"],
        id="image-not-allowed",
    ),
    pytest.param(
        {
            "destination": {
                "type": "duckdb",
                "duckdb": {"path": "/data/x.duckdb", "volume": {"hostPath": {"path": "/srv"}}},
            }
        },
        {},
        "SandboxViolation",
        ["spec.destination.duckdb.volume", "hostPath", "sandbox.volumeTypes"],
        id="volume-type-not-allowed",
    ),
    pytest.param(
        {
            "runner": {
                "env": [
                    {
                        "name": "HTTPS_PROXY",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    }
                ]
            }
        },
        {},
        "SandboxViolation",
        ["spec.runner.env[0]", "HTTPS_PROXY", "sandbox.envSecrets"],
        id="env-secret-not-allowed",
    ),
    pytest.param(
        {"destination": postgres_destination(secret="operator-db")},
        {"sandbox_denied_secrets": ["operator-db"]},
        "SandboxViolation",
        ["operator-db", "belongs to the installation"],
        id="denied-secret",
    ),
    pytest.param(
        {"schedule": "0 * * * *", "timeZone": "Mars/Olympus"},
        {},
        "InvalidTimeZone",
        ["spec.timeZone", "Mars/Olympus"],
        id="invalid-time-zone",
    ),
    pytest.param(
        {"type": "sql_database"},
        {},
        "InvalidSpec",
        ["spec"],
        id="spec-does-not-parse",
    ),
]


@pytest.mark.parametrize(("spec", "config", "reason", "named"), UNRUNNABLE)
def test_unrunnable_connection_is_not_ready_and_fails_its_runs_before_any_job(
    spec: dict[str, Any], config: dict[str, Any], reason: str, named: list[str]
) -> None:
    d = decide_connection(
        ready_conn(spec=rest_spec(**spec)),
        run_body(),
        running("demo-running"),
        job_body("demo-running", active=1),
        config=settings(**config),
    )
    assert not of_type(d, StartRun)
    first = d.actions[0]
    assert isinstance(first, PatchConnectionStatus)
    ready = condition(first.patch, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    for word in named:
        assert word in ready["message"], (word, ready["message"])
    assert [(e.type, e.reason) for e in first.events] == [("Warning", reason)]
    failed = only(run_patches(d, "demo-aaaaa"))
    assert failed.phase is RunPhase.FAILED and failed.precondition
    assert message_of(failed).startswith(f"ConnectionInvalid: {reason}: ")
    # a run that already has its Job is left to finish
    assert all(not p.phase.terminal for p in run_patches(d, "demo-running"))
    assert not of_type(d, DeleteJob)


def test_a_time_zone_that_is_a_tz_directory_is_invalid_not_a_crash() -> None:
    d = decide_connection(ready_conn(schedule="0 * * * *", timeZone="America"), run_body())
    ready = condition(d.actions[0].patch, "Ready")
    assert ready["reason"] == "InvalidTimeZone"


def test_a_schedule_that_never_fires_does_not_block_explicit_runs() -> None:
    d = decide_connection(ready_conn(schedule="0 0 31 4 *"), run_body())
    assert of_type(d, StartRun) or condition(d.actions[0].patch, "Ready")["status"] == "False"


def rejected_status(generation: int) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "JobRejected",
                "message": "JobRejected: the Kubernetes API refused the run's Job: forbidden",
                "lastTransitionTime": ts(-600),
                "observedGeneration": generation,
            }
        ],
    }


def test_a_job_rejected_connection_stays_not_ready_until_its_spec_changes() -> None:
    d = decide_connection(connection_body(status=rejected_status(1), generation=1), run_body())
    failed = only(d.actions)
    assert isinstance(failed, PatchRunStatus) and failed.phase is RunPhase.FAILED
    assert message_of(failed).startswith("ConnectionInvalid: JobRejected: ")

    d = decide_connection(connection_body(status=rejected_status(1), generation=2), run_body())
    assert describe(d) == [("PatchConnectionStatus", "demo"), ("StartRun", "demo-aaaaa")]
    ready = condition(d.actions[0].patch, "Ready")
    assert (ready["status"], ready["observedGeneration"]) == ("True", 2)


# --------------------------------------------------------------------------- destination mutex


def test_connections_sharing_the_warehouse_file_take_turns() -> None:
    d = decide_connection(
        ready_conn("a"),
        running("a-run", "a"),
        job_body("a-run", "a", active=1),
        ready_conn("b"),
        run_body("b-run", "b"),
        name="b",
    )
    queued = only(run_patches(d, "b-run"))
    assert queued.phase is RunPhase.QUEUED
    assert "run a-run of connection a" in message_of(queued)
    assert f"DuckDB file {WAREHOUSE_DEFAULT_FILE}" in message_of(queued)
    assert not of_type(d, StartRun)
    assert ("conn", NS, "a") in d.wake


@pytest.mark.parametrize(
    ("dest_a", "dest_b", "shared"),
    [
        pytest.param(duckdb_on_volume(), duckdb_on_volume(), True, id="same-volume-and-path"),
        pytest.param(
            duckdb_on_volume("/data/a.duckdb"),
            duckdb_on_volume("/data/b.duckdb"),
            False,
            id="same-volume-other-file",
        ),
        pytest.param(
            duckdb_on_volume(claim="one"),
            duckdb_on_volume(claim="two"),
            False,
            id="same-path-other-volume",
        ),
        pytest.param(
            {"type": "duckdb", "duckdb": {"path": "/var/lib/datapipelines/warehouse/x.duckdb"}},
            {"type": "duckdb", "duckdb": {"path": "/var/lib/datapipelines/warehouse/x.duckdb"}},
            True,
            id="same-path-on-the-warehouse",
        ),
        pytest.param(
            postgres_destination(), postgres_destination(), True, id="postgres-same-schema"
        ),
        pytest.param(
            postgres_destination(),
            postgres_destination(database="other"),
            False,
            id="postgres-other-database",
        ),
        pytest.param(
            postgres_destination(),
            postgres_destination(host="pg2.example"),
            False,
            id="postgres-other-host",
        ),
    ],
)
def test_destination_mutex(dest_a: dict, dest_b: dict, shared: bool) -> None:
    d = decide_connection(
        ready_conn("a", spec=rest_spec(destination=dest_a)),
        running("a-run", "a"),
        job_body("a-run", "a", active=1),
        ready_conn("b", spec=rest_spec(destination=dest_b)),
        run_body("b-run", "b"),
        name="b",
    )
    if shared:
        assert "run a-run of connection a" in message_of(only(run_patches(d, "b-run")))
        assert not of_type(d, StartRun)
    else:
        assert only(of_type(d, StartRun)).run.name == "b-run"


def test_postgres_other_schema_runs_in_parallel_same_schema_waits() -> None:
    pg = postgres_destination()
    common = [
        ready_conn("a", spec=rest_spec(destination=pg)),
        running("a-run", "a"),
        job_body("a-run", "a", active=1),
    ]
    same = decide_connection(
        *common, ready_conn("b", spec=rest_spec(destination=pg)), run_body("b-run", "b"), name="b"
    )
    queued = only(run_patches(same, "b-run"))
    assert "PostgreSQL schema demo_data on pg.example:5432/dw" in message_of(queued)
    other = decide_connection(
        *common,
        ready_conn("b", spec=rest_spec(destination=pg, schemaName="other_data")),
        run_body("b-run", "b"),
        name="b",
    )
    assert only(of_type(other, StartRun)).run.name == "b-run"


def in_namespace(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["namespace"] = namespace
    return body


def test_a_postgres_peer_in_another_namespace_is_woken_in_its_namespace() -> None:
    pg = postgres_destination()
    d = decide_connection(
        in_namespace("ns2", ready_conn("a", spec=rest_spec(destination=pg))),
        in_namespace("ns2", running("a-run", "a")),
        in_namespace("ns2", job_body("a-run", "a", active=1)),
        ready_conn("b", spec=rest_spec(destination=pg)),
        run_body("b-run", "b"),
        name="b",
    )
    assert only(run_patches(d, "b-run")).phase is RunPhase.QUEUED
    assert d.wake == {("conn", "ns2", "a")}


def test_destination_mutex_is_fifo_across_connections() -> None:
    w = World(
        ready_conn("a"),
        ready_conn("b"),
        run_body("b-run", "b", created=-30, rv=100),
        run_body("a-run", "a", created=-20, rv=101),
    )
    d = w.step("a")  # a's run is younger: it waits for b's
    queued = only(run_patches(d, "a-run"))
    assert queued.phase is RunPhase.QUEUED
    assert "the earlier run b-run of connection b" in message_of(queued)
    assert ("conn", NS, "b") in d.wake
    d = w.step("b")
    assert only(of_type(d, StartRun)).run.name == "b-run"
    d = w.step("a")  # b's run now holds the file
    assert "run b-run of connection b" in message_of(only(run_patches(d, "a-run")))
    w.complete_job("b-run")
    w.settle("b")
    assert w.run_view("b-run").phase is RunPhase.SUCCEEDED
    d = w.step("a")
    assert only(of_type(d, StartRun)).run.name == "a-run"


@pytest.mark.parametrize(
    ("pod", "waits"),
    [
        pytest.param({"phase": "Running", "running": True}, True, id="runner-still-running"),
        pytest.param({"phase": "Pending"}, True, id="pod-still-pending"),
        pytest.param(
            {"phase": "Running", "terminated": {"exitCode": 143, "reason": "Error"}},
            False,
            id="runner-terminated",
        ),
        pytest.param({"phase": "Failed"}, False, id="pod-failed"),
    ],
)
def test_the_next_writer_waits_for_an_ended_peer_runs_pod(pod: dict, waits: bool) -> None:
    # a's run was cancelled: its Job is gone, its runner may still be writing the file
    d = decide_connection(
        ready_conn("a"),
        run_body(
            "a-run", "a", status=finished_status("Cancelled", completed=-1, jobUid="uid-job-a-run")
        ),
        pod_body("a-run", "a", **pod),
        ready_conn("b"),
        run_body("b-run", "b"),
        name="b",
    )
    if waits:
        queued = only(run_patches(d, "b-run"))
        assert queued.phase is RunPhase.QUEUED
        assert message_of(queued) == (
            "waiting for the pod a-run-p0 of run a-run of connection a to stop "
            f"(same DuckDB file {WAREHOUSE_DEFAULT_FILE}; one writer at a time)"
        )
        assert not of_type(d, StartRun) and d.requeue_after == 2
    else:
        assert only(of_type(d, StartRun)).run.name == "b-run"


# --------------------------------------------------------------------------- retention


def finished(name: str, completed: float, phase: str = "Succeeded", **kw: Any) -> dict[str, Any]:
    return run_body(
        name,
        created=completed - 100,
        status=finished_status(phase, started=completed - 90, completed=completed),
        **kw,
    )


def test_finished_runs_beyond_history_limit_are_deleted_oldest_first() -> None:
    d = decide_connection(
        ready_conn(
            historyLimit=2,
            status=ready_status(lastRunAt=ts(-90), lastRunName="demo-4", lastRunSuccess=True),
        ),
        finished("demo-2", -300, "Failed"),
        finished("demo-4", -0.5 - 0),
        finished("demo-1", -400),
        finished("demo-3", -200, "Cancelled"),
        running("demo-active", created=-1000),
        job_body("demo-active", active=1),
    )
    deleted = [a.run.name for a in of_type(d, DeleteRun)]
    assert deleted == ["demo-1", "demo-2"]
    assert "historyLimit 2" in of_type(d, DeleteRun)[0].why


def test_history_limit_zero_keeps_a_run_until_its_batch_recorded_it() -> None:
    conn = ready_conn(
        historyLimit=0,
        status=ready_status(lastRunAt=ts(-190), lastRunName="b1-demo", lastRunSuccess=True),
    )
    done = finished("b1-demo", -100, batch="b1")
    pending_batch = batch_body(
        "b1",
        ["demo"],
        status={
            "state": "running",
            "current": "demo",
            "runs": [{"connection": "demo", "runName": "b1-demo", "phase": "Running"}],
        },
    )
    assert not of_type(decide_connection(conn, done, pending_batch), DeleteRun)

    recorded = batch_body(
        "b1",
        ["demo"],
        status={
            "state": "finished",
            "completed": ["demo"],
            "runs": [{"connection": "demo", "runName": "b1-demo", "phase": "Succeeded"}],
        },
    )
    assert [a.run.name for a in of_type(decide_connection(conn, done, recorded), DeleteRun)] == [
        "b1-demo"
    ]
    # a batch that no longer exists holds nothing
    assert of_type(decide_connection(conn, done), DeleteRun)


def test_a_run_ending_now_is_pruned_on_the_next_pass_not_before_its_end_is_written() -> None:
    w = World(ready_conn(historyLimit=0), running(), job_body(complete=True, succeeded=1))
    d = w.step()
    assert ("PatchRunStatus", "demo-aaaaa", "Succeeded") in describe(d)
    assert not of_type(d, DeleteRun)
    d = w.step()
    assert [a.run.name for a in of_type(d, DeleteRun)] == ["demo-aaaaa"]


def test_runs_of_a_deleted_connection_are_pruned_after_the_orphan_grace() -> None:
    config = settings(orphan_grace_seconds=600)
    d = decide_connection(
        finished("demo-old", -700),
        finished("demo-recent", -100),
        running("demo-active"),
        job_body("demo-active", active=1),
        pod_body("demo-active", phase="Running", running=True),
        config=config,
    )
    assert [a.run.name for a in of_type(d, DeleteRun)] == ["demo-old"]
    assert "connection is gone" in of_type(d, DeleteRun)[0].why
    assert d.requeue_after == pytest.approx(500)


# --------------------------------------------------------------------------- schedule


def scheduled(**spec: Any) -> dict[str, Any]:
    status = ready_status(lastScheduleTime=ts(-15 * 60))
    return ready_conn(schedule="*/15 * * * *", status=status, **spec)


def test_a_due_tick_creates_its_run_and_records_the_tick() -> None:
    now = at(30)  # 08:00:30; the tick is 08:00
    d = decide_connection(scheduled(), now=now)
    create = only(of_type(d, CreateRun))
    name = scheduled_run_name("demo", NOW)
    assert create.manifest["metadata"]["name"] == name == f"demo-{int(NOW.timestamp()) // 60}"
    assert create.manifest["spec"] == {
        "connectionName": "demo",
        "trigger": "schedule",
        "scheduledTime": ts(NOW),
    }
    assert [e.reason for e in create.events] == ["Scheduled"]
    patch = only([a for a in of_type(d, PatchConnectionStatus) if "lastScheduleTime" in a.patch])
    assert patch.patch == {"lastScheduleTime": ts(NOW)}
    assert describe(d).index(("CreateRun", name)) < d.actions.index(patch)
    assert d.requeue_after == pytest.approx(15 * 60 - 30 + 0.5)


def test_a_tick_whose_run_exists_makes_no_second_run() -> None:
    name = scheduled_run_name("demo", NOW)
    d = decide_connection(scheduled(), run_body(name, created=0, trigger="schedule"), now=at(30))
    assert not of_type(d, CreateRun)
    assert any(a.patch == {"lastScheduleTime": ts(NOW)} for a in of_type(d, PatchConnectionStatus))


def test_missed_ticks_make_one_run_and_a_warning() -> None:
    status = ready_status(lastScheduleTime=ts(-3600))
    d = decide_connection(ready_conn(schedule="*/15 * * * *", status=status), now=at(30))
    create = only(of_type(d, CreateRun))
    assert create.manifest["metadata"]["name"] == scheduled_run_name("demo", NOW)
    warning = [e for e in create.events if e.reason == "MissedSchedule"]
    assert only(warning).type == "Warning" and "3 earlier tick(s)" in warning[0].message


def test_no_tick_due_only_asks_to_come_back_at_the_next_one() -> None:
    status = ready_status(lastScheduleTime=ts(NOW))
    d = decide_connection(ready_conn(schedule="*/15 * * * *", status=status), now=at(300))
    assert d.actions == []
    assert d.requeue_after == pytest.approx(600.5)


@pytest.mark.parametrize("pause", [{"suspend": True}, {"enabled": False}])
def test_a_paused_schedule_does_nothing(pause: dict[str, Any]) -> None:
    d = decide_connection(scheduled(**pause), now=at(30))
    assert d.actions == [] and d.requeue_after is None


def test_the_first_tick_counts_from_the_creation_time() -> None:
    conn = ready_conn(schedule="0 * * * *", created=-1800)  # created 07:30, no tick recorded
    d = decide_connection(conn, now=at(10))
    assert only(of_type(d, CreateRun)).manifest["spec"]["scheduledTime"] == ts(NOW)
    young = ready_conn(schedule="0 * * * *", created=5)
    assert not of_type(decide_connection(young, now=at(10)), CreateRun)


# --------------------------------------------------------------------------- only what changed


ONE_ROUND = [
    pytest.param([connection_body(status={"observedGeneration": 1})], id="new-connection"),
    pytest.param([ready_conn(), running(), job_body(complete=True, succeeded=1)], id="run-ends"),
    pytest.param([ready_conn(runner={"image": "evil.example/runner:1"}), run_body()], id="invalid"),
    pytest.param(
        [
            ready_conn(concurrencyPolicy="Queue"),
            running("demo-first"),
            job_body("demo-first", active=1),
            pod_body("demo-first", phase="Running", running=True),
            run_body("demo-second", created=-10, rv=120),
        ],
        id="queued",
    ),
    pytest.param(
        [ready_conn(historyLimit=1), finished("demo-1", -400), finished("demo-2", -300)],
        id="retention",
    ),
    pytest.param([run_body(created=-100)], id="missing-connection"),
    pytest.param(
        [ready_conn(startTimeoutSeconds=10), running(), job_body(active=1, created=-50)],
        id="pod-not-started",
    ),
]


@pytest.mark.parametrize("objects", ONE_ROUND)
def test_a_decision_on_the_state_after_its_writes_writes_nothing(
    objects: list[dict[str, Any]],
) -> None:
    w = World(*objects)
    first = w.step(now=at(30))
    assert first.actions
    again = w.decide(now=at(30))
    assert again.actions == [], describe(again)


@pytest.mark.parametrize(
    "objects",
    [
        pytest.param([connection_body(), run_body()], id="new-connection-and-run"),
        pytest.param([scheduled()], id="schedule-tick-and-its-run"),
        pytest.param(
            [ready_conn(), running(cancel=True), job_body(active=1)], id="cancel-a-running-run"
        ),
        pytest.param(
            [
                ready_conn(concurrencyPolicy="Replace"),
                running("demo-run"),
                job_body("demo-run", active=1),
                pod_body("demo-run", phase="Running", running=True),
                run_body("demo-newest", created=-10, rv=120),
            ],
            id="replace",
        ),
    ],
)
def test_reconciling_reaches_a_fixed_point_without_repeating_a_write(
    objects: list[dict[str, Any]],
) -> None:
    w = World(*objects)
    w.settle(now=at(30), rounds=5)
    assert all(w.run_view(n).phase is not None for n in w.names("PipelineRun"))
    creations = [entry for entry in w.log if entry[0] in ("StartRun", "CreateRun", "DeleteRun")]
    assert len(creations) == len(set(creations)), creations


def test_no_status_write_right_after_a_start() -> None:
    w = World(ready_conn(), run_body())
    assert describe(w.step()) == [("StartRun", "demo-aaaaa")]
    assert w.decide().actions == []


@pytest.mark.parametrize(
    "job_kw", [{"active": 1}, {"complete": True, "succeeded": 1}], ids=["active", "complete"]
)
def test_a_pending_run_with_its_own_job_is_adopted_not_started_again(
    job_kw: dict[str, Any],
) -> None:
    d = decide_connection(ready_conn(), run_body(created=-100), job_body(**job_kw))
    assert not of_type(d, StartRun)
    assert run_patches(d, "demo-aaaaa")


def test_a_foreign_job_of_the_same_name_makes_the_run_wait() -> None:
    d = decide_connection(ready_conn(), run_body(), job_body(run_uid="uid-of-an-older-run"))
    queued = only(run_patches(d))
    assert queued.phase is RunPhase.QUEUED and "same name" in message_of(queued)
    assert not of_type(d, StartRun)
    assert d.requeue_after == 10


def test_only_warning_events_with_events_warnings() -> None:
    d = decide_connection(
        ready_conn(),
        running(),
        job_body(complete=True, succeeded=1),
        config=settings(events="warnings"),
    )
    assert all(not getattr(a, "events", ()) for a in d.actions)
    d = decide_connection(ready_conn(), running(), config=settings(events="warnings"))
    assert {e.type for a in d.actions for e in getattr(a, "events", ())} == {"Warning"}


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"conn": "other", "job_uid": "uid-job-of-another-run"}, id="other-owner"),
        pytest.param({"job_uid": ""}, id="labels-only"),
    ],
)
def test_pods_not_owned_by_the_runs_job_are_ignored_whatever_their_labels(forged: dict) -> None:
    d = decide_connection(
        ready_conn(),
        running(),
        job_body(active=1),
        pod_body(
            phase="Failed",
            terminated={"exitCode": 1, "reason": "Error", "message": "[" * 2000},
            **forged,
        ),
        now=at(0),
    )
    # only the run's own pods count: this one still waits for its pod (start deadline ticking)
    assert message_of(only(run_patches(d))) == "attempt 1" and d.requeue_after is not None


def test_batch_label_reaches_the_job() -> None:
    d = decide_connection(ready_conn(), run_body(batch="b1"), batch_body("b1", ["demo"]))
    start = only(of_type(d, StartRun))
    assert start.manifest["metadata"]["labels"][LABEL_BATCH] == "b1"


def test_a_run_ending_wakes_the_connections_waiting_for_its_destination() -> None:
    w = World(
        ready_conn("a"),
        ready_conn("b"),
        run_body("a-run", "a", created=-30, rv=100),
        run_body("b-run", "b", created=-20, rv=101),
    )
    assert only(of_type(w.step("a"), StartRun)).run.name == "a-run"
    assert only(run_patches(w.step("b"), "b-run")).phase is RunPhase.QUEUED
    d = w.step("a")
    assert d.wake == set()  # nothing ended: nobody to wake
    w.complete_job("a-run")
    d = w.step("a")
    assert only(run_patches(d, "a-run")).phase is RunPhase.SUCCEEDED
    assert d.wake == {("conn", NS, "b")}  # without waiting for a resync
    assert only(of_type(w.step("b"), StartRun)).run.name == "b-run"


def test_last_success_time_stays_when_later_runs_fail_and_only_moves_forward() -> None:
    status = ready_status(lastSuccessTime=ts(-10), lastRunAt=ts(-20), lastRunName="demo-ok")
    failed = decide_connection(
        ready_conn(status=status),
        running(),
        job_body(failed=("BackoffLimitExceeded", "Job has reached the specified backoff limit")),
    )
    for action in failed.actions:
        if isinstance(action, PatchConnectionStatus):
            assert "lastSuccessTime" not in action.patch

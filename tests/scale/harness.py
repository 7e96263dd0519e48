"""One scale run against the local cluster: set-up, a burst of `run_async`, reads while the
runs are in flight, the end of every run, an optional soak of per-minute schedules, clean-up.

The operator (one process per shard), the API and kwok are real processes on this machine; the
harness talks to the API over HTTP and to the apiserver with the operator's own client. It
watches Jobs itself, so a run's dispatch time is "POST run_async sent → its Job seen".
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from kubernetes_asyncio import client, watch
from pydantic import BaseModel

from datapipelines.operator.kube import Kube
from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    GROUP,
    LABEL_CONNECTION,
    LABEL_MANAGED_BY,
    MANAGED_BY_OPERATOR,
    RUN_PLURAL,
    VERSION,
)
from tests.scale.fleet import KWOK_NODE_SELECTOR, KWOK_TOLERATIONS, Fleet, connection_manifest
from tests.scale.probe import ProcSample, per_run, request_counts, sample
from tests.scale.stats import Latency
from tests.support.chart import render_chart
from tests.support.cluster import API_SERVER, HACK, KUBECONFIG, RUNNER_IMAGE, STATE_DIR, kubectl
from tests.support.kube import apply_crds, kubectl_apply
from tests.support.processes import IN_SYNC, Process, _async, free_port

log = logging.getLogger("scale")

LOG_DIR = STATE_DIR / "scale"
API_KEY = "scale-harness-key"
TERMINAL = {"finished", "cancelled"}
#: what the harness counts in etcd, cluster-wide
COUNTED = {
    CONNECTION_PLURAL: f"/apis/{GROUP}/{VERSION}/{CONNECTION_PLURAL}",
    RUN_PLURAL: f"/apis/{GROUP}/{VERSION}/{RUN_PLURAL}",
    BATCH_PLURAL: f"/apis/{GROUP}/{VERSION}/{BATCH_PLURAL}",
    "jobs": "/apis/batch/v1/jobs",
    "pods": "/api/v1/pods",
    "events": "/api/v1/events",
}


#: the local cluster's processes (hack/cluster.sh, hack/kwok.sh pid files), sampled as well
CLUSTER_PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ScaleParams(BaseModel):
    tag: str = "s"
    connections: int = 10_000
    namespaces: int = 20
    shards: int = 2
    burst: int = 1_000
    burst_seconds: float = 10.0
    run_seconds: float = 90.0
    """How long a burst run "runs" on its fake node: long enough for all to be in flight."""
    samples: int = 200
    steady_rate: float = 10.0
    """run_async per second of the steady phase (before the burst; 0: none)."""
    steady_seconds: float = 20.0
    soak_connections: int = 100
    soak_minutes: float = 0.0
    kwok_nodes: int = 4
    finish_timeout: float = 900.0
    keep: bool = False


class Figures(BaseModel):
    """Everything one run measured (printed by report.py, written as JSON)."""

    params: ScaleParams
    setup_seconds: float = 0
    create_per_second: float = 0
    ready_seconds: float = 0
    dispatch: dict[str, Latency] = {}
    """run_async sent → its Job seen, per phase (steady, burst)."""
    run_async: dict[str, Latency] = {}
    """How long POST run_async took to answer (part of the dispatch time), per phase."""
    burst_sent_seconds: float = 0
    peak_in_flight: int = 0
    reads: dict[str, dict[str, Latency]] = {}
    tasks: int = 0
    answered: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: list[str] = []
    duplicated: list[str] = []
    requests: dict[str, dict[str, float]] = {}
    requests_per_run: float = 0
    processes: dict[str, dict[str, float]] = {}
    etcd: dict[str, dict[str, int]] = {}
    soak: list[dict[str, Any]] = []


class JobWatch:
    """Jobs made by the operator, as seen by a watch of all namespaces: when each run's Job
    first appeared, every uid it had, which finished."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.first_seen: dict[tuple[str, str], float] = {}
        self.uids: dict[tuple[str, str], set[str]] = {}
        self.finished: set[tuple[str, str]] = set()
        self.peak_in_flight = 0
        self._task: asyncio.Task[None] | None = None

    def in_flight(self) -> int:
        return len(self.first_seen) - len(self.finished)

    async def start(self) -> None:
        batch = client.BatchV1Api(self.kube.api)
        version = await self._version(batch)
        self._task = asyncio.create_task(self._watch(batch, version))

    @staticmethod
    async def _version(batch: client.BatchV1Api) -> str:
        listed = await batch.list_job_for_all_namespaces(
            label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY_OPERATOR}", limit=1
        )
        return str(listed.metadata.resource_version)

    async def _watch(self, batch: client.BatchV1Api, version: str) -> None:
        while True:
            stream = watch.Watch(return_type="object")  # plain dicts: cheaper than models
            try:
                async for event in stream.stream(
                    batch.list_job_for_all_namespaces,
                    label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY_OPERATOR}",
                    resource_version=version,
                    timeout_seconds=300,
                ):
                    job = event["raw_object"]
                    version = job["metadata"]["resourceVersion"]
                    self._see(job, event["type"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped or expired watch: resume from now
                log.warning("job watch: %s; resuming", exc)
                await asyncio.sleep(0.5)
                version = await self._version(batch)
            finally:
                stream.stop()

    def _see(self, job: dict[str, Any], kind: str) -> None:
        meta = job["metadata"]
        key = (meta["namespace"], meta["name"])
        self.first_seen.setdefault(key, time.monotonic())
        self.uids.setdefault(key, set()).add(meta["uid"])
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                self.finished.add(key)
        if kind == "DELETED":
            self.finished.add(key)
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ProcWatch:
    """Samples the processes every second; CPU seconds are read at named marks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.last: dict[str, ProcSample] = {}
        self.marks: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(1)

    def poll(self) -> None:
        for name, pid in self.pids.items():
            if (s := sample(pid)) is not None:
                self.last[name] = s

    def mark(self, label: str) -> None:
        self.poll()
        self.marks[label] = {name: s.cpu_seconds for name, s in self.last.items()}

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _stopwatch() -> Callable[[], float]:
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


class Harness:
    def __init__(self, params: ScaleParams, log_dir: Path = LOG_DIR) -> None:
        self.p = params
        self.fleet = Fleet(
            tag=params.tag,
            connections=params.connections,
            namespaces=params.namespaces,
            shards=params.shards,
        )
        self.log_dir = log_dir
        self.figures = Figures(params=params)
        self.operators: list[Process] = []
        self.operator_metrics: list[str] = []
        self.api: Process | None = None
        self.api_url = ""
        self.kube: Kube | None = None
        self.http: httpx.AsyncClient | None = None
        self.jobs: JobWatch | None = None
        self.procs: ProcWatch | None = None
        self.tasks: dict[str, tuple[str, str]] = {}  # task id -> (namespace, connection)
        self.sent: dict[str, float] = {}  # task id -> when its run_async was sent (monotonic)
        self.phase_of: dict[str, set[str]] = {}  # phase -> its task ids
        self.requests_before: tuple[dict[str, float], dict[str, float]] = ({}, {})

    # ------------------------------------------------------------------ set-up

    async def setup(self) -> None:
        elapsed = _stopwatch()
        out = await asyncio.to_thread(
            subprocess.run,
            [str(HACK / "kwok.sh"), "up", str(self.p.kwok_nodes)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"hack/kwok.sh up failed:\n{out.stderr[-4000:]}")
        apply_crds()
        self._delete_namespaces(wait=True)
        objects: list[dict[str, Any]] = []
        rbac = render_chart("scale", "NAMESPACE", templates=("runner.yaml",))
        for k in range(self.fleet.namespaces):
            ns = self.fleet.namespace(k)
            objects.append(self.fleet.namespace_manifest(k))
            for obj in rbac:
                objects.append({**obj, "metadata": {**obj["metadata"], "namespace": ns}})
        kubectl_apply(objects)
        for ns in self.fleet.namespace_names():
            await self._wait(
                functools.partial(self._has_default_sa, ns),
                60,
                f"the default ServiceAccount of {ns}",
            )
        self.kube = await Kube.connect(str(KUBECONFIG), 30)
        t0 = time.perf_counter()
        await self._create_connections(
            connection_manifest(name, ns, run_seconds=self.p.run_seconds)
            for ns, name in self.fleet.placement()
        )
        self.figures.create_per_second = round(self.p.connections / (time.perf_counter() - t0), 1)
        steady = int(self.p.steady_rate * self.p.steady_seconds)
        await self._create_connections(
            connection_manifest(name, ns, run_seconds=2)
            for ns, name in self.fleet.steady_placement(steady)
        )
        self.figures.setup_seconds = round(elapsed(), 1)
        await self._etcd("after set-up")

    def _has_default_sa(self, ns: str) -> Awaitable[bool]:
        done = kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0
        return _async(done)

    async def _create_connections(self, manifests: Any, concurrency: int = 24) -> None:
        assert self.kube is not None
        kube = self.kube
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for m in manifests:
            queue.put_nowait(m)

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                ns = body["metadata"]["namespace"]
                await kube.request(
                    "POST", kube.custom(ns, CONNECTION_PLURAL), body=body, tolerate=(409,)
                )

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    # ------------------------------------------------------------------ processes

    def start_processes(self) -> None:
        base = {
            "KUBECONFIG": str(KUBECONFIG),
            "DATAPIPELINES_KUBECONFIG": str(KUBECONFIG),
            "DATAPIPELINES_LOG_FORMAT": "text",
        }
        for shard in range(self.fleet.shards):
            port = free_port()
            env = {
                **base,
                "DATAPIPELINES_NAMESPACE": "",
                "DATAPIPELINES_SHARD_SELECTOR": self.fleet.shard_selector(shard),
                "DATAPIPELINES_SHARD_POLL_SECONDS": "5",
                "DATAPIPELINES_LEASE_NAMESPACE": self.fleet.namespace(shard),
                "DATAPIPELINES_LEASE_NAME": f"scale-{self.p.tag}-operator",
                "POD_NAME": f"scale-shard-{shard}",
                "DATAPIPELINES_RUNNER_IMAGE": RUNNER_IMAGE,
                "DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY": "Never",
                "DATAPIPELINES_RUNNER_HOST_NETWORK": "true",
                "DATAPIPELINES_RUNNER_NODE_SELECTOR": json.dumps(KWOK_NODE_SELECTOR),
                "DATAPIPELINES_RUNNER_TOLERATIONS": json.dumps(KWOK_TOLERATIONS),
                "DATAPIPELINES_KUBE_API": API_SERVER,
                "DATAPIPELINES_HEALTH_PORT": "0",
                "DATAPIPELINES_METRICS_PORT": str(port),
                "DATAPIPELINES_LISTEN_HOST": "127.0.0.1",
                "DATAPIPELINES_EVENTS": "warnings",  # the chart's default
                "DATAPIPELINES_JOB_TTL_SECONDS": "300",
            }
            proc = Process("datapipelines-operator", f"operator-{shard}", env, self.log_dir)
            self.operators.append(proc.start())
            self.operator_metrics.append(f"http://127.0.0.1:{port}/metrics")
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = Process(
            "datapipelines-api",
            "api",
            {
                **base,
                "DATAPIPELINES_NAMESPACE": "",
                "DATAPIPELINES_API_KEY": API_KEY,
                "DATAPIPELINES_API_HOST": "127.0.0.1",
                "DATAPIPELINES_API_PORT": str(port),
                "DATAPIPELINES_LOG_LEVEL": "WARNING",
            },
            self.log_dir,
        ).start()
        pids = {f"operator-{i}": p.proc.pid for i, p in enumerate(self.operators) if p.proc}
        if self.api.proc:
            pids["api"] = self.api.proc.pid
        pids["harness"] = os.getpid()
        for name in CLUSTER_PROCESSES:  # where the rest of the machine's CPU goes
            pid_file = STATE_DIR / "pids" / f"{name}.pid"
            if pid_file.exists():
                pids[name] = int(pid_file.read_text().strip())
        self.procs = ProcWatch(pids)
        self.procs.start()
        self.http = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"X-API-Key": API_KEY},
            timeout=60,
            limits=httpx.Limits(max_connections=64),
        )

    def _check_alive(self) -> None:
        for proc in [*self.operators, *([self.api] if self.api else [])]:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail(60)}")

    async def wait_ready(self) -> None:
        elapsed = _stopwatch()
        limit = 180 + self.p.connections / 20
        for proc in self.operators:
            await self._wait(functools.partial(_in_sync, proc), limit, f"{proc.name} in sync")
        await self._wait(self._api_lists_all, limit, "the API to list every connection")
        await self._wait(self._operators_quiet, limit, "the operators' start-up writes to end")
        self.figures.ready_seconds = round(elapsed(), 1)

    async def _api_lists_all(self) -> bool:
        assert self.http is not None
        try:
            resp = await self.http.get("/connections")
        except httpx.HTTPError:
            return False
        if resp.status_code != 200:
            return False
        ours = [c for c in resp.json() if c["name"].startswith(f"{self.p.tag}-")]
        steady = int(self.p.steady_rate * self.p.steady_seconds)
        return len(ours) >= self.p.connections + steady

    async def _operators_quiet(self) -> bool:
        before = await self._writes()
        await asyncio.sleep(3)
        return await self._writes() == before

    async def _writes(self) -> float:
        counts = await self._operator_requests()
        return sum(v for key, v in counts.items() if per_run(key))

    async def _operator_requests(self) -> dict[str, float]:
        assert self.http is not None
        total: dict[str, float] = {}
        for url in self.operator_metrics:
            text = (await self.http.get(url)).text
            for verb, value in request_counts(
                text, "datapipelines_operator_apiserver_requests_total"
            ).items():
                total[verb] = total.get(verb, 0.0) + value
        return total

    async def _api_requests(self) -> dict[str, float]:
        assert self.http is not None
        text = (await self.http.get("/metrics")).text
        return request_counts(text, "datapipelines_api_apiserver_requests_total")

    async def _wait(self, check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
            await asyncio.sleep(1)

    # ------------------------------------------------------------------ reads

    async def measure_reads(self, phase: str) -> None:
        """GET /connections and /task_status from the API, and the direct apiserver list of
        every connection (paginated by 500) as the reference."""
        assert self.http is not None and self.kube is not None
        lists, statuses, direct = [], [], []
        # while runs are in flight, the status of those (a finished run's status also reads
        # its report from the apiserver once: another figure)
        ids = list(self.phase_of.get("burst") or self.tasks)
        for i in range(self.p.samples):
            t = _stopwatch()
            resp = await self.http.get("/connections")
            lists.append(t())
            resp.raise_for_status()
            if ids:
                t = _stopwatch()
                (await self.http.get(f"/task_status/{random.choice(ids)}")).raise_for_status()
                statuses.append(t())
            if i % 20 == 0:
                t = _stopwatch()
                await self._direct_list()
                direct.append(t())
        figures = {"GET /connections": Latency.of(lists), "direct list": Latency.of(direct)}
        if statuses:
            figures["GET /task_status"] = Latency.of(statuses)
        self.figures.reads[phase] = figures

    async def _direct_list(self) -> int:
        assert self.kube is not None
        path = f"/apis/{GROUP}/{VERSION}/{CONNECTION_PLURAL}"
        token, count = None, 0
        while True:
            page = await self.kube.request("GET", path, query={"limit": 500, "continue": token})
            assert page is not None
            count += len(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return count

    # ------------------------------------------------------------------ the burst

    async def start_watching(self) -> None:
        """The Job watch and the request counters' starting point, before the first run."""
        self.jobs = JobWatch(self._kube())
        await self.jobs.start()
        self.requests_before = (await self._operator_requests(), await self._api_requests())

    async def steady(self) -> None:
        """`steady_rate` run_async per second for `steady_seconds` on connections of their
        own (short runs): the dispatch time when the cluster is not saturated."""
        count = int(self.p.steady_rate * self.p.steady_seconds)
        if count <= 0:
            return
        await self._fire("steady", self.fleet.steady_placement(count), self.p.steady_seconds)
        assert self.jobs is not None
        jobs = self.jobs
        keys = [(ns, t) for t, (ns, _) in self.tasks.items() if t in self.phase_of["steady"]]
        await self._wait(
            lambda: _async(all(key in jobs.finished for key in keys)),
            120 + self.p.steady_seconds,
            "the steady runs to finish",
        )

    async def burst(self) -> None:
        """`burst` run_async over `burst_seconds`, one per connection, paced evenly."""
        assert self.procs is not None
        self.procs.mark("burst start")
        t0 = time.monotonic()
        await self._fire("burst", self.fleet.placement()[: self.p.burst], self.p.burst_seconds)
        self.figures.burst_sent_seconds = round(time.monotonic() - t0, 1)

    async def _fire(self, phase: str, targets: list[tuple[str, str]], seconds: float) -> None:
        """One run_async per target, evenly paced over `seconds`; a call does not wait for the
        answer to the one before (an open-loop load, as many clients make)."""
        assert self.http is not None
        http = self.http
        gap = seconds / max(1, len(targets))
        answered: list[float] = []
        ids = self.phase_of.setdefault(phase, set())
        t0 = time.monotonic()

        async def one(i: int, ns: str, name: str) -> None:
            await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
            at = time.monotonic()
            resp = await http.post(f"/connections/{name}/run_async")
            answered.append(time.monotonic() - at)
            if resp.status_code != 200:
                raise RuntimeError(f"run_async {name}: {resp.status_code} {resp.text}")
            task = resp.json()["task_id"]
            self.tasks[task] = (ns, name)
            self.sent[task] = at
            ids.add(task)

        await asyncio.gather(*(one(i, ns, name) for i, (ns, name) in enumerate(targets)))
        self.figures.run_async[phase] = Latency.of(answered)

    def _kube(self) -> Kube:
        assert self.kube is not None
        return self.kube

    async def wait_finished(self) -> None:
        """Every task answers terminal (or the time runs out): dispatch latency, lost and
        duplicated runs, requests per run."""
        assert self.jobs is not None and self.http is not None and self.procs is not None
        jobs, http = self.jobs, self.http
        pending = dict(self.tasks)
        answers: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.p.run_seconds + self.p.finish_timeout
        sem = asyncio.Semaphore(16)

        async def ask(task: str) -> None:
            async with sem:
                resp = await http.get(f"/task_status/{task}")
            if resp.status_code == 200:
                body = resp.json()
                if body.get("status") in TERMINAL and not body.get("active"):
                    answers[task] = body
                    pending.pop(task, None)

        while pending and time.monotonic() < deadline:
            self._check_alive()
            done = [t for t, (ns, _) in pending.items() if (ns, t) in jobs.finished]
            await asyncio.gather(*(ask(t) for t in done or list(pending)[:50]))
            await asyncio.sleep(2)
        self.procs.mark("burst end")
        await asyncio.sleep(5)  # the last status writes land
        after = (await self._operator_requests(), await self._api_requests())
        f = self.figures
        f.peak_in_flight = jobs.peak_in_flight
        f.tasks = len(self.tasks)
        f.answered = len(answers)
        f.succeeded = sum(1 for a in answers.values() if (a.get("result") or {}).get("success"))
        f.failed = f.answered - f.succeeded
        f.lost = sorted(pending)
        for phase, ids in self.phase_of.items():
            f.dispatch[phase] = Latency.of(
                [
                    jobs.first_seen[(ns, task)] - self.sent[task]
                    for task, (ns, _) in self.tasks.items()
                    if task in ids and (ns, task) in jobs.first_seen
                ]
            )
        f.duplicated = sorted(
            [
                f"{ns}/{name}: {len(uids)} Jobs"
                for (ns, name), uids in jobs.uids.items()
                if len(uids) > 1
            ]
            + await self._extra_runs()
        )
        f.requests = {
            "operator": _delta(self.requests_before[0], after[0]),
            "api": _delta(self.requests_before[1], after[1]),
        }
        writes = sum(v for side in f.requests.values() for key, v in side.items() if per_run(key))
        f.requests_per_run = round(writes / max(1, f.tasks), 2)
        await self._etcd("after the burst")
        await jobs.stop()

    async def _extra_runs(self) -> list[str]:
        """Connections of the burst with more than one run (each got exactly one run_async)."""
        kube = self._kube()
        counts: dict[str, int] = {}
        for ns in self.fleet.namespace_names():
            token = None
            while True:
                page = await kube.request(
                    "GET",
                    kube.custom(ns, RUN_PLURAL),
                    query={"limit": 500, "continue": token},
                )
                assert page is not None
                for run in page.get("items") or []:
                    conn = (run["metadata"].get("labels") or {}).get(LABEL_CONNECTION, "?")
                    counts[f"{ns}/{conn}"] = counts.get(f"{ns}/{conn}", 0) + 1
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return [f"{key}: {n} runs" for key, n in counts.items() if n > 1]

    # ------------------------------------------------------------------ the soak

    async def soak(self) -> None:
        """`soak_connections` on a per-minute schedule (historyLimit 3) for `soak_minutes`;
        the etcd object counts each half minute."""
        if self.p.soak_minutes <= 0:
            return
        await self._create_connections(
            connection_manifest(
                f"{self.p.tag}-soak{i:04d}",
                self.fleet.namespace(i % self.fleet.namespaces),
                run_seconds=5,
                schedule="* * * * *",
                history_limit=3,
            )
            for i in range(self.p.soak_connections)
        )
        t0 = time.monotonic()
        while (minutes := (time.monotonic() - t0) / 60) < self.p.soak_minutes:
            self._check_alive()
            counts = await self._counts()
            self.figures.soak.append({"minute": round(minutes, 1), **counts})
            log.info("soak %.1f min: %s", minutes, counts)
            await asyncio.sleep(30)
        self.figures.soak.append({"minute": round(self.p.soak_minutes, 1), **await self._counts()})

    # ------------------------------------------------------------------ etcd, clean-up

    async def _counts(self) -> dict[str, int]:
        """How many of each object exist now, cluster-wide: a list of one item tells the rest
        (`remainingItemCount`), exact where the apiserver's own storage gauge lags a minute."""
        kube = self._kube()
        counts = {}
        for name, path in COUNTED.items():
            page = await kube.request("GET", path, query={"limit": 1})
            assert page is not None
            items = len(page.get("items") or [])
            counts[name] = items + int((page.get("metadata") or {}).get("remainingItemCount") or 0)
        return counts

    async def _etcd(self, label: str) -> None:
        self.figures.etcd[label] = await self._counts()

    def finish_processes(self) -> None:
        if self.procs:
            self.procs.poll()
            marks = self.procs.marks
            for name, s in self.procs.last.items():
                start = marks.get("burst start", {}).get(name, 0.0)
                end = marks.get("burst end", {}).get(name, s.cpu_seconds)
                self.figures.processes[name] = {
                    "rss_mb": s.rss_mb,
                    "peak_rss_mb": s.peak_rss_mb,
                    "cpu_seconds_total": round(s.cpu_seconds, 1),
                    "cpu_seconds_burst": round(end - start, 1),
                }

    async def close(self) -> None:
        if self.procs:
            await self.procs.stop()
        if self.jobs:
            await self.jobs.stop()
        for proc in [*self.operators, *([self.api] if self.api else [])]:
            proc.stop()
        if self.http:
            await self.http.aclose()
        if self.kube:
            await self.kube.close()
        if not self.p.keep:
            self._delete_namespaces(wait=False)

    def _delete_namespaces(self, *, wait: bool) -> None:
        selector = f"datapipelines.io/scale-fleet={self.p.tag}"
        kubectl("delete", "namespace", "-l", selector, f"--wait={str(wait).lower()}", timeout=900)


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(before) | set(after))}


async def _in_sync(proc: Process) -> bool:
    text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
    return IN_SYNC in text


async def run(params: ScaleParams, log_dir: Path = LOG_DIR) -> Figures:
    """The whole run; processes are stopped and (unless `keep`) the fleet deleted at the end."""
    h = Harness(params, log_dir)
    try:
        await h.setup()
        h.start_processes()
        await h.wait_ready()
        await h.measure_reads(f"idle, {params.connections} connections")
        await h.start_watching()
        await h.steady()
        await h.burst()
        await h.measure_reads(f"{params.burst} runs in flight")
        await h.wait_finished()
        await h.soak()
        h.finish_processes()
        return h.figures
    finally:
        await h.close()

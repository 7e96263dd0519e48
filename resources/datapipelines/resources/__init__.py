"""The one contract shared by the operator, the API and the runner: ``datapipelines.resources``.

Pure (no kopf, no Kubernetes client, no I/O), shipped in all three images:

* names: API group/version, kinds, plurals, labels, annotations (this module);
* typed pydantic models of every spec and status (:mod:`.connection`, :mod:`.run`,
  :mod:`.batch`, shared parts in :mod:`.meta`), from which the CRDs in ``crds/`` are generated
  (:mod:`.crdgen`);
* the PipelineRun / PipelineBatch manifest builders (:mod:`.manifests`);
* what the operator hands a runner pod and the runner reads (:mod:`.podcontract`);
* time helpers and the in-cluster apiserver URL (:mod:`.times`, :mod:`.incluster`);
* the PostgreSQL archive table (:mod:`.history`).
"""

GROUP = "datapipelines.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CONNECTION_KIND = "PipelineConnection"
CONNECTION_PLURAL = "pipelineconnections"
RUN_KIND = "PipelineRun"
RUN_PLURAL = "pipelineruns"
BATCH_KIND = "PipelineBatch"
BATCH_PLURAL = "pipelinebatches"

LABEL_CONNECTION = f"{GROUP}/connection"
LABEL_RUN = f"{GROUP}/run"
LABEL_BATCH = f"{GROUP}/batch"
LABEL_TRIGGER = f"{GROUP}/trigger"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_OPERATOR = "datapipelines-operator"

#: Longest connection name: its runs (``<connection>-<5 random>``) stay within MAX_RUN_NAME.
MAX_CONNECTION_NAME = 51
#: Longest run name (= its Job's name). The Job controller names pods ``<job>-<5 random>`` and
#: shortens the prefix beyond 58 characters; at 57 or fewer a pod's name identifies its run
#: exactly, which the runner admission policy relies on (docs/security.md).
MAX_RUN_NAME = 57

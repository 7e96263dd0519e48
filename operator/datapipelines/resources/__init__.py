"""Names shared by the operator, the API and the chart: the Kubernetes resources of datapipelines.

Pure: no kopf, no I/O. See docs/contracts.md.
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

"""One log schema: a line from the API, the operator (through kopf's handler) and the runner
(with its secret redaction) parses to the same fields."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator

import jsonschema
import pytest

from datapipelines.resources.logformat import JsonFormatter, TextFormatter
from tests.support.tools import REPO_ROOT

SCHEMA_KEYS = {"ts", "level", "logger", "msg"}
LOG_SCHEMA = json.loads((REPO_ROOT / "docs" / "log-schema.json").read_text())
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def configure_api() -> None:
    from datapipelines.api.logs import configure_logging

    configure_logging("json")


def configure_operator() -> None:
    from datapipelines.operator.config import Settings
    from datapipelines.operator.main import _configure_logging

    _configure_logging(Settings(log_format="json"))


def configure_runner() -> None:
    from datapipelines.runner.main import setup_logging

    setup_logging("json")


@pytest.mark.parametrize("configure", [configure_api, configure_operator, configure_runner])
def test_each_component_writes_the_one_schema(
    configure: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    configure()
    logging.getLogger("datapipelines.test").warning(
        "run %s failed", "r-1", extra={"run": "r-1", "connection": "c"}
    )
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    line = next(x for x in lines if x.get("logger") == "datapipelines.test")
    jsonschema.validate(line, LOG_SCHEMA)  # docs/log-schema.json, the documented schema
    assert set(line) >= SCHEMA_KEYS and TS.match(line["ts"])
    assert (line["level"], line["msg"], line["run"], line["connection"]) == (
        "warning", "run r-1 failed", "r-1", "c",
    )  # fmt: skip


def test_kopf_object_references_and_redaction() -> None:
    record = logging.LogRecord("kopf.objects", logging.INFO, "", 0, "token=s3cr3t seen", None, None)
    record.k8s_ref = {"kind": "PipelineRun", "name": "r-1", "namespace": "team-a"}
    record.k8s_skip = False
    hide: Callable[[str], str] = lambda text: text.replace("s3cr3t", "***")  # noqa: E731
    line = json.loads(JsonFormatter(redact=hide).format(record))
    assert line["namespace"] == "team-a" and line["object"] == "pipelinerun/r-1"
    assert line["msg"] == "token=*** seen" and "k8s_skip" not in line
    text = TextFormatter(redact=hide).format(record)
    assert text.endswith("token=*** seen namespace=team-a object=pipelinerun/r-1")


def test_the_schema_refuses_other_shapes() -> None:
    with pytest.raises(jsonschema.ValidationError):  # kopf's own shape, before this round
        jsonschema.validate({"timestamp": "x", "severity": "info", "message": "m"}, LOG_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # local time without milliseconds
        line = {"ts": "2026-12-07T12:00:00", "level": "info", "logger": "a", "msg": "m"}
        jsonschema.validate(line, LOG_SCHEMA)

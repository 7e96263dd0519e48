"""The pod contract's path and env rules, and their CEL twins evaluated by cel-python: what the
apiserver refuses at admission is what the operator refuses (property-based where it fits)."""

from __future__ import annotations

import functools
import posixpath

import celpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datapipelines.resources import podcontract as pod


@functools.cache
def cel_program(expr: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(expr))


def cel_eval(expr: str, **values: str) -> bool:
    program = cel_program(expr)
    return bool(program.evaluate({k: celpy.celtypes.StringType(v) for k, v in values.items()}))


segments = st.sampled_from(["", ".", "..", "data", "etc", "opt", "a.b", "..x", "tmp", "var"])
paths = st.lists(segments, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts))


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/data/in", True),
        ("/", True),
        ("/data/.hidden", True),
        ("/data/..x", True),
        ("/data/../etc", False),
        ("//etc", False),
        ("/./opt/venv", False),
        ("/data/", False),
        ("/data/.", False),
        ("/data/..", False),
        ("/var/lib/datapipelines/warehouse//warehouse.duckdb", False),
        ("data/in", False),
    ],
)
def test_normal_paths(path: str, normal: bool) -> None:
    assert pod.is_normal_path(path) is normal
    assert cel_eval(pod.normal_path_cel("d"), d=path) is normal


@settings(max_examples=100, deadline=None)
@given(paths)
def test_normal_path_rule_and_its_cel_twin_agree(path: str) -> None:
    assert pod.is_normal_path(path) == cel_eval(pod.normal_path_cel("d"), d=path)
    if pod.is_normal_path(path):
        assert posixpath.normpath(path) == path


@settings(max_examples=100, deadline=None)
@given(paths)
def test_mountable_rule_and_its_cel_twin_agree(path: str) -> None:
    assert pod.is_mountable(path) == cel_eval(pod.mountable_cel("d"), d=path)


@pytest.mark.parametrize(
    "directory",
    ["/data/../etc", "//etc", "/./opt/venv", "/", "/tmp", "/etc/x", pod.SECRETS_DIR + "/s"],
)
def test_not_mountable(directory: str) -> None:
    assert not pod.is_mountable(directory)
    assert not cel_eval(pod.mountable_cel("d"), d=directory)


@pytest.mark.parametrize(
    "name",
    [
        "NORMALIZE__WORKERS",
        "LOAD__WORKERS",
        "EXTRACT__WORKERS",
        "DATA_WRITER__BUFFER_MAX_ITEMS",
        "RUNTIME__LOG_LEVEL",
        "RUNTIME__REQUEST_MAX_ATTEMPTS",
        "RUNNER__MY_SETTING",
        "HTTPS_PROXY",
        "no_proxy",
        "TZ",
    ],
)
def test_env_names_a_sync_needs_are_allowed(name: str) -> None:
    assert pod.env_name_allowed(name)
    assert cel_eval(pod.env_allowed_cel("n"), n=name)


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "PYTHONINSPECT",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "OPENSSL_CONF",
        "GCONV_PATH",
        "BASH_ENV",
        "PATH",
        "HOME",
        "SSL_CERT_FILE",
        "RUNTIME__SENTRY_DSN",
        "DESTINATION__DUCKDB__CREDENTIALS",
        "DATAPIPELINES_CONNECTION_SPEC",
        "TZX",
        "XTZ",
        "RUNNER__",
    ],
)
def test_interpreter_and_loader_variables_are_refused(name: str) -> None:
    assert not pod.env_name_allowed(name)
    assert not cel_eval(pod.env_allowed_cel("n"), n=name)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[-._a-zA-Z][-._a-zA-Z0-9]{0,30}", fullmatch=True))
def test_env_rule_and_its_cel_twin_agree(name: str) -> None:
    assert pod.env_name_allowed(name) == cel_eval(pod.env_allowed_cel("n"), n=name)
    if name.startswith(("PYTHON", "LD_")):
        assert not pod.env_name_allowed(name)


@pytest.mark.parametrize(
    ("url", "directory"),
    [("file:///data/in", "/data/in"), ("/data/in", "/data/in"), ("s3://b/p", None)],
)
def test_bucket_dir(url: str, directory: str | None) -> None:
    assert pod.bucket_dir(url) == directory

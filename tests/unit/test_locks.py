"""The images install pinned requirements (reproducible builds): each lock file satisfies every
requirement pyproject.toml declares for that image, so a dependency changed in one place
without re-locking fails here, not in a build months later."""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.tools import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def pins(path: str) -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[canonicalize_name(name)] = version
    return out


def declared(*extras: str, base: bool = True) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]] if base else []
    for extra in extras:
        reqs += [
            Requirement(r)
            for r in PROJECT["optional-dependencies"][extra]
            if not r.startswith("datapipelines")
        ]
    return reqs


def runner_inputs() -> list[Requirement]:
    """The runner's extra and runner-image/requirements.in (only the base dependencies the
    runner imports: not the operator's and the API's)."""
    text = (REPO_ROOT / "runner-image" / "requirements.in").read_text()
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return declared("runner", base=False) + [Requirement(line) for line in lines if line]


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [
        ("deploy/docker/requirements.txt", lambda: declared("operator", "api")),
        ("runner-image/requirements.txt", runner_inputs),
    ],
)
def test_each_lock_satisfies_what_pyproject_declares(
    lock: str, wanted: Callable[[], list[Requirement]]
) -> None:
    pinned = pins(lock)
    problems = []
    for req in wanted():
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy {req}")
    assert not problems, (
        f"{lock}: re-lock (make app-requirements / runner-requirements): {problems}"
    )


def test_the_app_image_installs_its_lock() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "COPY deploy/docker/requirements.txt" in dockerfile and "--no-deps" in dockerfile
    assert "tomllib" not in dockerfile, "no version ranges resolved at build time"

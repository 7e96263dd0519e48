"""Resolve requirements.in into pinned requirements.txt (pip's resolver, nothing installed).

pyproject.toml's base dependencies and runner extra are constraints, so the pins agree with
the project's own environment (and the wheelhouse hack/images.sh builds from pyproject).

usage: python runner-image/lock.py   (run by `make runner-requirements`)
"""

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent

project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
constraints = [*project["dependencies"], *project["optional-dependencies"]["runner"]]
with tempfile.TemporaryDirectory() as tmp:
    report = Path(tmp) / "report.json"
    constraints_file = Path(tmp) / "constraints.txt"
    # constraints cannot carry extras: strip "[...]"
    constraints_file.write_text(
        "\n".join(c.split("[")[0] + (c.split("]")[1] if "]" in c else "") for c in constraints)
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--report",
            str(report),
            "-r",
            str(HERE / "requirements.in"),
            "-c",
            str(constraints_file),
        ],
        check=True,
    )
    installs = json.loads(report.read_text())["install"]
pins = sorted(
    f"{item['metadata']['name'].lower()}=={item['metadata']['version']}" for item in installs
)
header = (
    "# Pinned from runner-image/requirements.in by runner-image/lock.py "
    f"(python {sys.version_info.major}.{sys.version_info.minor}, linux x86_64).\n"
    "# Regenerate with `make runner-requirements`; keep in step with pyproject's runner extra.\n"
)
(HERE / "requirements.txt").write_text(header + "\n".join(pins) + "\n")
print(f"{len(pins)} pins written to {HERE / 'requirements.txt'}")

"""Resolve the operator + API image's requirements into pinned deploy/docker/requirements.txt
(pip's resolver, nothing installed), so the image builds the same packages every time.

The input is pyproject.toml's base dependencies and its `operator` and `api` extras (what
hack/requirements.py prints); the runner image has its own pins (runner-image/lock.py).

usage: python deploy/docker/lock.py   (run by `make app-requirements`)
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

wanted = subprocess.run(
    [sys.executable, str(ROOT / "hack" / "requirements.py"), "operator,api"],
    check=True,
    capture_output=True,
    text=True,
).stdout
with tempfile.TemporaryDirectory() as tmp:
    report, requirements = Path(tmp) / "report.json", Path(tmp) / "requirements.in"
    requirements.write_text(wanted)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--only-binary=:all:", "--report", str(report), "-r", str(requirements),
        ],
        check=True,
        env={"PIP_FIND_LINKS": "", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    installs = json.loads(report.read_text())["install"]
pins = sorted(
    f"{item['metadata']['name'].lower()}=={item['metadata']['version']}" for item in installs
)
header = (
    "# Pinned from pyproject.toml (base + operator,api extras) by deploy/docker/lock.py "
    f"(python {sys.version_info.major}.{sys.version_info.minor}, linux x86_64).\n"
    "# Regenerate with `make app-requirements` after changing those dependencies.\n"
)
(HERE / "requirements.txt").write_text(header + "\n".join(pins) + "\n")
print(f"{len(pins)} pins written to {HERE / 'requirements.txt'}")

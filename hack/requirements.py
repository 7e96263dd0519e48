"""Print the third-party requirements of the project for the given extras (one per line).

Used by hack/images.sh to prepare the offline wheelhouses (build/wheels/<name>/); the
Dockerfiles compute the same list from pyproject.toml. `hatchling` is added because the images
install the project itself offline (--no-build-isolation).
usage: python3 hack/requirements.py operator,api
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
project = tomllib.loads(PYPROJECT.read_text())["project"]
reqs = list(project["dependencies"])
for extra in filter(None, (sys.argv[1] if len(sys.argv) > 1 else "").split(",")):
    optional = project["optional-dependencies"][extra]
    reqs += [r for r in optional if not r.startswith("datapipelines")]
print("\n".join([*reqs, "hatchling>=1.24"]))

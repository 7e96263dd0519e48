"""Kubernetes resource quantities (``100m``, ``2Gi``, ``1e3``): parsing, the runner's effective
requests and limits, and the sandbox's maxima. Pure."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
)

Resources = dict[str, dict[str, Any]]
"""core/v1 ResourceRequirements as a dict: ``{"requests": {...}, "limits": {...}}``."""


def parse(value: str | int | float) -> Decimal:
    """The quantity's value in base units (bytes, cores); ValueError if it is not one."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
    except InvalidOperation as error:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from error


def merged(default: Resources, override: Resources | None) -> Resources:
    """The runner container's resources: the installation's defaults, each key overridden by the
    connection's. A default request above the connection's own limit is lowered to that limit
    (the apiserver refuses requests above limits)."""
    out: Resources = {
        part: dict(default.get(part) or {}) | dict((override or {}).get(part) or {})
        for part in ("requests", "limits")
    }
    own_limits = (override or {}).get("limits") or {}
    own_requests = (override or {}).get("requests") or {}
    for key, limit in own_limits.items():
        request = out["requests"].get(key)
        if key not in own_requests and request is not None and parse(request) > parse(limit):
            out["requests"][key] = limit
    return {part: values for part, values in out.items() if values}


def over(resources: Resources | None, maximum: Resources) -> list[str]:
    """``requests.cpu 16 > 8``-style descriptions of every value above the installation's
    maximum (a maximum applies to requests and limits alike)."""
    found: list[str] = []
    for part in ("requests", "limits"):
        for key, value in ((resources or {}).get(part) or {}).items():
            cap = (maximum.get("limits") or {}).get(key)
            if cap is not None and parse(value) > parse(cap):
                found.append(f"{part}.{key} {value} > {cap}")
    return found

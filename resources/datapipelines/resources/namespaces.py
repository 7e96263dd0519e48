"""Which namespaces the operator and the API serve, from ``DATAPIPELINES_NAMESPACE``. Pure.

* not set: the process's own namespace (a pod's, else ``default``);
* ``""`` or ``"*"``: every namespace (cluster-wide watches);
* ``"a,b,c"``: exactly those.
"""

from __future__ import annotations


def watched(value: str | None, own: str) -> list[str]:
    """The served namespaces; ``[]`` means all of them."""
    if value is None:
        return [own]
    text = value.strip()
    if text in ("", "*"):
        return []
    return sorted({part.strip() for part in text.split(",") if part.strip()})

"""Fixtures of the operator's unit tests; the builders live in opkit.py."""

from __future__ import annotations

import pytest

from datapipelines.operator.config import Settings
from tests.unit.operator import opkit


@pytest.fixture
def settings() -> Settings:
    return opkit.settings()

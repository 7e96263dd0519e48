"""Fixtures of the operator's unit tests; builders live in opkit.py."""

import pytest

from datapipelines.operator.config import Settings
from tests.unit.operator.opkit import make_settings


@pytest.fixture
def settings() -> Settings:
    return make_settings()

"""Unit-test fixtures of the API: an app over the in-memory FakeStore, and an async client."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import AUTH, KEY, OLD_KEY, FakeStore


@pytest.fixture
def fake() -> FakeStore:
    store = FakeStore()
    store.add_connection("alpha")
    store.add_connection("beta", enabled=False, type="sql_database", schemaName="beta_db")
    store.add_connection("gamma", concurrencyPolicy="Queue", schedule="*/5 * * * *")
    return store


@pytest.fixture
def settings() -> Settings:
    return Settings(api_key=f"{KEY},{OLD_KEY}", namespace="test")


@pytest.fixture
def app(settings: Settings, fake: FakeStore) -> FastAPI:
    return create_app(settings, kube=fake, archive=None)


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    )


@pytest.fixture
def anon(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")

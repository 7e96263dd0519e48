"""A real browser for the console's tests: Debian's chromium, headless, driven by Playwright
(its own browser downloads are never used: `executable_path` names the system's)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.tools import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "console"


def chromium() -> Path:
    """The system's chromium; installed by hack/install-deps.sh when missing."""
    if not CHROMIUM.exists():
        import subprocess

        subprocess.run([str(REPO_ROOT / "hack" / "install-deps.sh")], check=True, timeout=900)
    assert CHROMIUM.exists() or shutil.which("chromium"), "chromium is not installed"
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module scope: Playwright's sync API runs its own loop, which must not outlive a module
    whose neighbours use the session's asyncio loop."""
    path = chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(path), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"

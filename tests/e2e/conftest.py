"""A real stack for the browser tests, started like `make run` starts it.

The web app, one Arq worker (not burst: pages follow live status) and the SMTP
catcher run as child processes on the test's Redis and SQLite; Playwright drives
Debian's chromium (`playwright install` cannot download a browser here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright
from pydantic import SecretStr

from docdigest.core.db import create_tables
from docdigest.devserver.redis import free_ports
from docdigest.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 860}


@pytest.fixture(params=["sqlite"])
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The browser tests run on SQLite only: the pages do not depend on the engine."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
    await create_tables(url)
    yield url


def settings_env(settings: Settings) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"DOCDIGEST_{name.upper()}"] = str(value)
    return env


@dataclass
class Stack:
    base_url: str
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]]
    log_dir: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def _wait_until_up(base_url: str, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the web app did not answer within 60 s")


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    if CHROMIUM is None:
        print("e2e skipped: no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH: install Debian's chromium package")
    smtp_port, web_port = free_ports(2)
    settings = settings.model_copy(
        update={
            "env": "development",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "dev_mail_dir": tmp_path / "mail",
            "host": "127.0.0.1",
            "port": web_port,
            "log_format": "text",
            "log_level": "WARNING",
        }
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **settings_env(settings)}
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    commands = {
        "smtp": ["-m", "docdigest.devserver.smtp", str(smtp_port), str(tmp_path / "mail")],
        "web": ["-m", "docdigest", "web"],
        "worker": ["-m", "docdigest", "worker"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in commands.items():
            log = (log_dir / f"{name}.log").open("wb")
            processes[name] = subprocess.Popen(
                [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        base_url = f"http://127.0.0.1:{web_port}"
        _wait_until_up(base_url, processes)
        yield Stack(base_url, settings, processes, log_dir)
    finally:
        # Shown by pytest only when the test fails: what the web app and worker said.
        print(Stack("", settings, processes, log_dir).logs())
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


PASSWORD = "correct horse battery"


async def sign_up(page: Page, email: str, name: str = "Ada Lovelace") -> None:
    """Sign up through the form, as a person would; ends on the upload page."""
    await page.goto("/signup")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("main").get_by_role("button", name="Sign up").click()
    await page.wait_for_url("**/upload")


async def new_page(
    browser: Browser, stack: Stack, **options: object
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=stack.base_url,
        viewport=DESKTOP,
        accept_downloads=True,
        **options,  # type: ignore[arg-type]
    )
    context.set_default_timeout(30_000)
    return context, await context.new_page()


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

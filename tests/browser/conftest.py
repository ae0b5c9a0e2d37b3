"""Browser fixtures: Debian's chromium driven by Playwright (its own browser download is
never used) against the real API process over real PostgreSQL (`console_stack`).

Like the integration fixtures they fail, never skip, when something is missing: a
skipped browser suite would let CI pass without ever opening a page.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)

from dspyops.api.ui.auth import COOKIE
from dspyops.cli.infra.kafka import metadata_answers
from dspyops.settings import get_settings
from tests.support.console_stack import ConsoleStack, console_stack

CHROMIUM = os.environ.get("DSPYOPS_TEST_CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    settings = get_settings()
    servers, url = settings.bootstrap_servers, settings.effective_database_url
    if not metadata_answers(servers):
        pytest.fail(f"Kafka at {servers} does not answer: run `dspyops infra up` first")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at {url} does not answer ({exc}): run `dspyops infra up` first")
    with console_stack(url, servers, tmp_path_factory.mktemp("api") / "api.log") as started:
        yield started


@pytest.fixture(scope="module")
def browser(stack: ConsoleStack) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop running in this thread while it is open:
    # nothing may call asyncio.run meanwhile (the stack's Kafka probe does, so `stack`
    # comes first), and it is closed with the module, before any async test runs.
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no chromium at {CHROMIUM}: run ./scripts/setup (or set DSPYOPS_TEST_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        # No sandbox: test machines and containers often run as root, where it cannot start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Visit:
    """One page opened, with everything that went wrong while it loaded."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    methods: set[str] = field(default_factory=set)

    def watch(self) -> None:
        self.page.on(
            "console",
            lambda m: (
                self.console_errors.append(m.text) if m.type in ("error", "warning") else None
            ),
        )
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)
        self.page.on("request", lambda r: self.methods.add(r.method))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console_errors.append(f"{message.type}: {message.text}")

    def _request_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.request.method} {response.url}: {response.status}")


def open_context(browser: Browser, stack: ConsoleStack, **options: object) -> BrowserContext:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.add_cookies([{"name": COOKIE, "value": stack.token, "url": f"{stack.url}/ui/"}])
    return context


@pytest.fixture
def visit(browser: Browser, stack: ConsoleStack) -> Iterator[Callable[[str], Visit]]:
    """Opens a console path, logged in, and waits until its charts are drawn."""
    context = open_context(browser, stack)

    def opened(path: str) -> Visit:
        seen = Visit(context.new_page())
        seen.watch()
        seen.page.goto(stack.url + path, wait_until="load")
        charts = seen.page.locator("figure[data-chart]").count()
        if charts:
            seen.page.wait_for_function(
                f"document.querySelectorAll('figure[data-points]').length === {charts}"
            )
        return seen

    yield opened
    context.close()

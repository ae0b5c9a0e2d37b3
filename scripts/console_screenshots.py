"""The screenshots in docs/console.md, taken by Debian's chromium (through Playwright, as
the browser tests drive it) from the browser tests' seeded stack (a `dspyops api`
process over a projected read schema; tests/support/console_stack.py).

    PYTHONPATH=. .venv/bin/python scripts/console_screenshots.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from dspyops.aggregates.app import CommandContext, handle, optimizations
from dspyops.api.ui.auth import COOKIE
from dspyops.events.commands import OptimizeProgram
from dspyops.settings import get_settings
from tests.support.console_stack import ConsoleStack, console_stack

OUT = Path(__file__).resolve().parents[1] / "docs" / "console"
CHROMIUM = os.environ.get("DSPYOPS_TEST_CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    settings = get_settings()
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        console_stack(
            settings.effective_database_url, settings.bootstrap_servers, Path(tmp) / "api.log"
        ) as stack,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.add_cookies([{"name": COOKIE, "value": stack.token, "url": f"{stack.url}/ui/"}])
        page = context.new_page()
        for name, path in (
            ("program", "/ui/programs/qa"),
            ("execution", f"/ui/executions/{stack.story['traced']}"),
            ("optimization", f"/ui/optimizations/{_running_optimization(stack)}"),
        ):
            page.goto(stack.url + path, wait_until="load")
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"wrote {OUT / f'{name}.png'}")
        browser.close()


def _running_optimization(stack: ConsoleStack) -> str:
    """An optimization caught mid-run (four of ten steps recorded): its live page."""
    run_id = "opt-running"
    command = OptimizeProgram(program_id="qa", dataset_id="ds", optimization_id=run_id)
    ctx = CommandContext(command_id=f"shot-{run_id}", correlation_id="screenshots", actor="ops")
    handle(stack.store, command, ctx)
    for step, best in ((1, 0.2), (2, 0.35), (3, 0.35), (4, 0.5)):
        optimizations.record_progress(stack.store, run_id, step, 10, best)
    stack.project()
    return run_id


if __name__ == "__main__":
    main()

"""The console in a real browser: Debian's Chromium driven by Playwright, one per test module,
kept off every network but this machine's loopback; the local stack (`refunds dev`) once per
test module; a sign-in through the identity provider's own form."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from refunds.devstack import Ports
from tests.browser.support import CHROMIUM, WAIT_MS, Console, new_person
from tests.e2e.conftest import _read_until
from tests.e2e.support import Platform
from tests.support.ports import stack_base

# The machine is shared (two cores, other test files alongside): assertions wait as long as the
# pages' own actions may take, not Playwright's 5 s.
expect.set_options(timeout=WAIT_MS)

# Nothing leaves the machine: every name but the loopback's fails to resolve, and Chromium's
# own background traffic (updates, metrics, sync, safe-browsing lists) is switched off.
CHROMIUM_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--no-default-browser-check",
)


# Per module, not per session: Playwright's sync API runs an event loop in this thread while it
# is started, and every later test in the worker that calls asyncio.run() would find it there.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium per test module: Debian's, never a downloaded build."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: the browser tests need Debian's chromium "
            "(`bash scripts/ensure-chromium.sh`, which `make test` runs)",
            pytrace=False,
        )
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS)
    )
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`refunds dev` on a free base port, shared by the tests of one module."""
    data_dir = tmp_path_factory.mktemp("stack")
    base = stack_base()
    ports = Ports.from_base(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFUNDS_", "SANDBOX_"))}
    cli = Path(sys.executable).with_name("refunds")
    process = subprocess.Popen(
        # The console's tests follow payouts at the sandbox gateway (its ledger, its switches).
        [
            *(str(cli), "dev", "--data-dir", str(data_dir), "--base-port", str(base)),
            "--no-providers",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        _read_until(process, "Ctrl-C to stop", timeout=120)
        platform = Platform(
            f"http://127.0.0.1:{ports.intake}", f"http://127.0.0.1:{ports.gateway}", data_dir
        )
        yield Console(ports, platform)
        platform.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def people(browser: Browser) -> Iterator[Callable[[], Page]]:
    """A browser window of their own for each person a test signs in: the provider's session
    cookie is per browser, as it is for two people at two desks."""
    contexts: list[BrowserContext] = []

    def open_window() -> Page:
        context = new_person(browser)
        contexts.append(context)
        return context.new_page()

    yield open_window
    for context in contexts:
        context.close()

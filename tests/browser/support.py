"""What the browser tests share: where Chromium is, the stack's addresses, a person's window
and their sign-in through the identity provider's own form, the staff APIs' answers to check
what the pages did, and the accessibility scan."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page

from refunds.devstack import Ports
from tests.e2e.support import Platform
from tests.support.identity import sign_in as token_of

CHROMIUM = os.environ.get("REFUNDS_CHROMIUM", "/usr/bin/chromium")
# Screenshots of every page, per language. A test run writes them under data/ (ignored: ids and
# times differ each run); `REFUNDS_SCREENSHOTS=docs/screenshots` refreshes the committed ones
# the README shows.
SCREENSHOTS = Path(
    os.environ.get("REFUNDS_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "data" / "screenshots"
)
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 15_000
SERIOUS = ("serious", "critical")


@dataclass
class Console:
    """The running stack, as the browser tests see it."""

    ports: Ports
    platform: Platform

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports.console}{path}"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.ports.identity}"

    def staff(self, service: str, username: str) -> httpx.Client:
        """A service's staff API as `username` (signed in at the provider, not in a browser),
        to check what the pages changed."""
        token = token_of(self.issuer, username)["access_token"]
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports.of(service)}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def wait_status(self, refund_id: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
        """Intake's view of the refund once its status is `wanted` (fails naming the last)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.platform.refund(refund_id)
            if view["status"] == wanted:
                return view
            assert time.monotonic() < deadline, (
                f"{refund_id} is {view['status']!r}, not {wanted!r}, after {timeout}s"
            )
            time.sleep(0.2)


def new_person(browser: Browser) -> BrowserContext:
    """A fresh browser profile at a fixed size, in the staff's zone: the same pixels each run."""
    context = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        reduced_motion="reduce",
    )
    context.set_default_timeout(WAIT_MS)
    return context


def sign_in(page: Page, console: Console, username: str, start: str = "/") -> None:
    """Through the provider's real form: the console sends the browser there, the person types
    their name and password, the provider sends the browser back signed in."""
    page.goto(console.url("/auth/login?" + urlencode({"next": start})))
    assert page.url.startswith(console.issuer + "/authorize"), page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(console.url()) + ".*"))
    assert page.locator("form[action='/auth/logout']").count() == 1, page.content()


def switch_language(page: Page, tag: str) -> None:
    """The header's language form, as a person uses it."""
    page.locator("#locale").select_option(tag)
    with page.expect_navigation():
        page.locator("form[action='/language'] button[type=submit]").click()
    assert page.locator("html").get_attribute("lang") == tag


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    results = Axe().run(page).response
    # The scan ran on this page and checked something (not an empty or blocked document).
    assert results["url"] == page.url and len(results["passes"]) > 10, results.get("url")
    found = results["violations"]
    return [
        f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:5])}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def screenshot(page: Page, lang: str, name: str) -> Path:
    """The viewport (not the whole page: small files, the same size each time)."""
    target = SCREENSHOTS / lang / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), animations="disabled", caret="hide")
    return target


Window = Callable[[], Page]

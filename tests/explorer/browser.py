"""Playwright driving the Chromium that the npm package @sparticuz/chromium ships (tools/): no
browser is downloaded. The page's console errors and uncaught exceptions are collected."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from functools import cache

from stakelearn.verifier_contracts.solc import TOOLS_DIR

# Headless, no sandbox (root in CI), and none of Chromium's own connections (the network is closed).
ARGS = [
    "--no-sandbox",
    "--no-zygote",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@cache
def chromium_path() -> str:
    """The Chromium binary, which @sparticuz/chromium unpacks (once) into the temporary folder."""
    script = "import('@sparticuz/chromium').then((m) => m.default.executablePath()).then((p) => console.log(p))"
    done = subprocess.run(["node", "-e", script], cwd=TOOLS_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextmanager
def browser_page(width: int = 1280, height: int = 1500):
    """A new page, and the list its console errors and uncaught exceptions go to."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()

"""What the browser tests share: Debian's Chromium, axe-core from npm, and screenshots."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.paths import PACKAGE_ROOT

CHROMIUM = Path(os.environ.get("AGENCYML_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(
    os.environ.get(
        "AGENCYML_AXE_JS", PACKAGE_ROOT / ".cache" / "axe" / "node_modules/axe-core/axe.min.js"
    )
)
SCREENSHOTS = PACKAGE_ROOT / ".cache" / "test-artifacts" / "screenshots"


def serious_violations(page) -> list[dict]:
    """axe-core's serious and critical findings on the page as it is (the page's context must
    bypass the pages' CSP, which forbids the injected script)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in found
        if v.get("impact") in ("serious", "critical")
    ]


def shot(page, name: str) -> None:
    """A full-page screenshot kept as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()

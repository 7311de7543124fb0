"""The web console in a real browser: Debian's Chromium driven by Playwright.

A real gateway over SmolLM2, with an API key and an admin key; the tests type the
keys into the page as a user would, and save a screenshot of each page under
``test-artifacts/console/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import ROOT, Server, wait_for

KEY = "console-key"
ADMIN = "console-admin"
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What a root Chromium needs in a sandboxed VM with no network (see .ci/run).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REGISTRY = """
models:
  - name: smollm2
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 1024, parallel: 2}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("console") / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    env = {"ROUNDHOUSE_API_KEYS": KEY, "ROUNDHOUSE_ADMIN_KEY": ADMIN}
    with Server(config, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def _open(page: Any, gateway: Server, path: str, *, admin: bool = True) -> None:
    page.goto(f"{gateway.url}{path}")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    if admin:
        page.fill("#admin-key", ADMIN)
        page.dispatch_event("#admin-key", "change")


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _row(page: Any, name: str) -> Any:
    return page.locator(f'tr[data-deployment="{name}"]')


def test_the_models_page_shows_the_model_ready(page: Any, gateway: Server) -> None:
    _open(page, gateway, "/ui/", admin=False)
    state = _row(page, "smollm2").locator("td[data-state]")
    state.wait_for(timeout=15_000)
    page.wait_for_function(
        "() => document.querySelector('tr[data-deployment=smollm2] td[data-state]')"
        ".dataset.state === 'ready'",
        timeout=15_000,
    )
    assert _row(page, "smollm2").locator("td").nth(2).inner_text() == "llamacpp"
    # Without the admin key the buttons say why they are off.
    assert _row(page, "smollm2").get_by_role("button", name="Unload", exact=True).is_disabled()
    _shot(page, "models")
    # The same page in the dark theme that the system may ask for.
    page.emulate_media(color_scheme="dark")
    _shot(page, "models-dark")


def test_the_playground_streams_an_answer_and_stops_one(page: Any, gateway: Server) -> None:
    _open(page, gateway, "/ui/playground", admin=False)
    page.wait_for_selector('#play-model option[value="smollm2"]', state="attached")
    page.fill("#play-max-tokens", "24")
    page.fill("#play-temperature", "0")
    page.fill("#play-prompt", "What is the capital of France?")
    page.click("#play-send")
    page.wait_for_selector('.turn.assistant[data-state="done"]', timeout=60_000)
    answer = page.locator(".turn.assistant .text").first.inner_text()
    assert answer.strip()
    stats = page.inner_text("#play-stats")
    assert "usage:" in stats
    assert "finish: " in stats
    assert "TTFT" in stats
    _shot(page, "playground")

    # A long answer, stopped while it streams: the slot must be freed.
    page.fill("#play-max-tokens", "900")
    page.fill("#play-temperature", "0.8")
    page.fill("#play-prompt", "Write a very long story about a lighthouse keeper.")
    page.click("#play-send")
    page.wait_for_function(
        "() => { const t = document.querySelectorAll('.turn.assistant .text');"
        " return t.length === 2 && t[1].textContent.length > 20; }",
        timeout=60_000,
    )
    page.click("#play-stop")
    page.wait_for_selector('.turn.assistant[data-state="stopped"]', timeout=10_000)
    assert page.get_attribute("#play-stats", "data-finish") == "stopped"
    wait_for(
        lambda: (
            gateway.deployment("smollm2")["in_flight"] == 0
            and gateway.deployment("smollm2")["slots_processing"] == 0
        ),
        timeout=15,
        what="the stopped generation to free its slot",
    )
    _shot(page, "playground-stopped")


def test_unload_and_load_with_the_admin_key(page: Any, gateway: Server) -> None:
    _open(page, gateway, "/ui/")
    row = _row(page, "smollm2")
    row.wait_for(timeout=15_000)
    state = "document.querySelector('tr[data-deployment=smollm2] td[data-state]').dataset.state"
    page.wait_for_function(f"() => {state} === 'ready'", timeout=15_000)
    row.get_by_role("button", name="Unload", exact=True).click()
    page.wait_for_function(f"() => {state} === 'unloaded'", timeout=30_000)
    _shot(page, "models-unloaded")
    _row(page, "smollm2").get_by_role("button", name="Load", exact=True).click()
    page.wait_for_function(f"() => {state} === 'ready'", timeout=60_000)


def test_a_chart_moves_after_requests(page: Any, gateway: Server) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 16,
    }
    for _ in range(3):
        reply = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert reply.status_code == 200
    _open(page, gateway, "/ui/live", admin=False)
    for chart in ("#chart-tokens", "#chart-requests"):
        page.wait_for_function(
            f"() => Number(document.querySelector('{chart}').dataset.points || 0) > 0",
            timeout=20_000,
        )
    assert "smollm2" in page.inner_text("#legend")
    _shot(page, "live")


def test_the_translate_and_logs_pages(page: Any, gateway: Server) -> None:
    _open(page, gateway, "/ui/translate", admin=False)
    page.wait_for_selector('#tr-model option[value="smollm2"]', state="attached")
    page.click("#tr-add")
    assert page.locator("#tr-glossary tbody tr").count() == 2
    page.fill("#tr-text", "こんにちは、世界。")
    page.locator("#tr-glossary tbody tr").first.locator(".g-src").fill("世界")
    page.locator("#tr-glossary tbody tr").first.locator(".g-dst").fill("world")
    _shot(page, "translate")

    _open(page, gateway, "/ui/logs")
    page.wait_for_selector("#logs-table tbody tr", timeout=15_000)
    assert "smollm2" in page.inner_text("#logs-table")
    _shot(page, "logs")


def test_the_root_links_browsers_to_the_console(gateway: Server) -> None:
    html = httpx.get(gateway.url, headers={"Accept": "text/html,application/xhtml+xml"})
    assert 'href="/ui/"' in html.text
    assert httpx.get(gateway.url).text == "Ollama is running"
    # The pages and their script come from the gateway itself: nothing from a CDN.
    shell = httpx.get(f"{gateway.url}/ui/").text
    assert "https://" not in shell
    script = httpx.get(f"{gateway.url}/ui/static/console.js")
    assert script.status_code == 200
    assert "https://" not in script.text

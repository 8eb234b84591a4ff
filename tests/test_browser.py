"""The page in a real browser (Playwright + Debian's Chromium) against local mode and a tiny model.

Screenshots of each state go to ``test-artifacts/browser/``; with ``UPDATE_SCREENSHOTS=1`` the ones the
README shows are also copied to ``docs/screenshots/``. The README's are taken with a model trained on
IMDB rather than the tiny one:

    UPDATE_SCREENSHOTS=1 LOCAL_MODE_MODEL_DIR=.local/model .venv/bin/pytest tests/test_browser.py
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fixtures_local import (NATURAL_NEGATIVE_REVIEW, NEGATIVE_WORDS, POSITIVE_REVIEW, POSITIVE_WORDS, REPO,
                            FakeEndpoint, Front)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = REPO / "test-artifacts" / "browser"
README_SHOTS = {  # test-artifacts name -> docs/screenshots name
    "positive-sample-desktop.png": "positive.png",
    "negative-phone.png": "negative-phone.png",
    "error-api-down.png": "error-api-down.png",
}
DESKTOP = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}

XSS = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       '<svg onload="window.__xss=3"></svg> wonderful superb "><b onmouseover=window.__xss=4>bold</b>')


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") and name in README_SHOTS:
        target = REPO / "docs" / "screenshots" / README_SHOTS[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, target)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make system-deps` (Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False)
        yield b
        b.close()


@pytest.fixture
def local(local_mode):
    """The README's local mode with the tiny model (session-wide; see fixtures_local.py)."""
    return local_mode


@pytest.fixture(scope="module")
def desktop(browser):
    context = browser.new_context(viewport=DESKTOP, service_workers="block")
    yield context
    context.close()


class Page:
    """One tab, failing the test on any CSP violation or uncaught page error."""

    def __init__(self, browser, url: str, viewport=DESKTOP, clock: bool = False, context=None):
        # A shared context when given (cheaper); a context of its own for another viewport or a clock.
        self.own_context = context is None
        self.context = context or browser.new_context(viewport=viewport, service_workers="block")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and "Failed to load resource" not in m.text else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        if clock:
            self.page.clock.install()
        self.page.goto(url + "/")
        self.page.wait_for_selector("body[data-config='loaded']")

    def classify(self, text: str) -> None:
        self.page.fill("#review", text)
        self.page.evaluate("document.body.dataset.state = 'submitting'")
        self.page.click("#submit")
        self.wait_done()

    def wait_done(self) -> None:
        # Selectors, not wait_for_function: polling a JS predicate needs eval, which the page's CSP forbids.
        self.page.wait_for_selector("body[data-state='result'], body[data-state='error']", state="attached")

    def meter(self) -> float:
        return self.page.eval_on_selector("#meter", "m => m.value")

    def highlighted(self, kind: str) -> list[str]:
        return self.page.eval_on_selector_all(f"#words span.w[class*='{kind}-']",
                                              "els => els.map(e => e.textContent)")

    def error(self) -> str:
        assert self.page.is_visible("#error"), "no error shown"
        assert self.page.get_attribute("#error", "role") == "alert"
        assert self.page.is_hidden("#result")
        return self.page.text_content("#error-message")

    def close(self) -> None:
        self.page.close()
        if self.own_context:
            self.context.close()
        assert not self.problems, self.problems


def test_positive_review(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    tab.classify(POSITIVE_REVIEW)
    page = tab.page
    assert page.text_content("#label") == "Positive"
    assert "label positive" == page.get_attribute("#label", "class")
    assert tab.meter() >= 0.5
    assert "probability that the review is positive" in page.text_content("#score-text")
    positive = tab.highlighted("pos")
    assert set(POSITIVE_WORDS) & set(positive), positive
    assert page.is_visible("#explanation") and page.is_visible(".legend")
    assert page.text_content("#top-positive li:first-child .top-word") in positive
    assert page.is_hidden("#error")
    shot(page, "positive-desktop.png")
    tab.close()


def test_negative_review_with_the_keyboard_only_on_a_phone(browser, local):
    tab = Page(browser, local.page_url, viewport=PHONE)
    page = tab.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "review"
    page.keyboard.insert_text(NATURAL_NEGATIVE_REVIEW)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "explain"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#label") == "Negative"
    assert tab.meter() < 0.5
    negative = tab.highlighted("neg")
    assert set(NEGATIVE_WORDS) & set(negative), negative
    # Nothing is wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "negative-phone.png")
    tab.close()


def test_sample_buttons_and_ctrl_enter(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.click("text=A positive review")
    tab.wait_done()
    assert page.input_value("#review").startswith("One of the best films")
    assert page.text_content("#label") == "Positive"
    assert tab.highlighted("pos")
    shot(page, "positive-sample-desktop.png")
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.click("text=A negative review")
    tab.wait_done()
    assert page.input_value("#review").startswith("A boring")
    assert page.text_content("#label") == "Negative"
    page.fill("#review", POSITIVE_REVIEW)
    page.uncheck("#explain")
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.press("#review", "Control+Enter")
    tab.wait_done()
    assert page.text_content("#label") == "Positive"
    assert page.is_hidden("#explanation")  # explanation not requested
    tab.close()


def test_review_markup_is_shown_as_text_and_never_runs(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    tab.classify(XSS)
    assert page.is_visible("#result")
    assert page.evaluate("window.__xss") is None
    assert page.eval_on_selector_all("#result img, #result script, #result svg, #result b", "e => e.length") == 0
    words = page.eval_on_selector_all("#words span", "els => els.map(e => e.textContent)")
    assert "wonderful" in words and all("<" not in w for w in words)
    shot(page, "xss-review.png")
    tab.close()


def test_hostile_server_answers_are_shown_as_text(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    payload = '<img src=x onerror="window.__xss=5">'
    answers = iter([
        (200, {"label": "positive", "score": 0.9, "explanation": [
            {"word": payload, "weight": 0.4}, {"word": "<script>window.__xss=6</script>", "weight": -0.2},
            {"word": "fine", "weight": None}, {"bogus": 1}, "junk"]}),
        (400, {"error": payload}),
        (200, {"label": payload, "score": 0.9}),
        (200, {"label": "positive", "score": "0.9"}),
        (502, "<html><body onload='window.__xss=7'>Bad gateway</body></html>"),
    ])

    def fulfil(route):
        status, body = next(answers)
        route.fulfill(status=status, content_type="application/json" if isinstance(body, dict) else "text/html",
                      body=json.dumps(body) if isinstance(body, dict) else body)

    page.route("**/predict", fulfil)
    tab.classify("anything")
    assert page.text_content("#words span:first-child") == payload
    assert page.text_content("#top-positive .top-word") == payload
    tab.classify("anything")
    assert tab.error() == f"The API refused the review (HTTP 400): {payload}"
    tab.classify("anything")
    assert "not with a prediction" in tab.error()  # never "POSITIVE" for an answer that is not one
    tab.classify("anything")
    assert "not with a prediction" in tab.error()
    tab.classify("anything")
    assert "HTTP 502" in tab.error() and "Bad gateway" in tab.error()
    assert page.evaluate("window.__xss") is None
    assert page.eval_on_selector_all("img, main script", "e => e.length") == 0
    tab.close()


def test_empty_review_is_refused_without_a_request(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    requests = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/predict") else None)
    page.fill("#review", "   \n ")
    page.click("#submit")
    assert "Write or paste a review first" in tab.error()
    assert page.evaluate("document.activeElement.id") == "review"
    assert requests == []
    tab.close()


def test_too_large_review_shows_the_servers_message(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    tab.classify("great " * 25_000)  # 150,000 bytes
    assert page.get_attribute("#byte-count", "class") == "byte-count over"
    message = tab.error()
    assert message.startswith("The API refused the review (HTTP 413)") and "131072" in message
    shot(page, "error-too-large.png")
    tab.close()


def test_loading_state_and_timeout(browser, local):
    tab = Page(browser, local.page_url, clock=True)
    page = tab.page
    held = []
    page.route("**/predict", lambda route: held.append(route))
    page.fill("#review", POSITIVE_REVIEW)
    page.click("#submit")
    page.wait_for_selector("body[data-state='loading']", state="attached")
    assert page.is_disabled("#submit") and page.text_content("#submit") == "Classifying…"
    assert "Classifying" in page.text_content("#status")
    shot(page, "loading.png")
    page.clock.run_for(31_000)
    page.wait_for_selector("body[data-state='error']", state="attached")
    assert "did not answer within 30 seconds" in tab.error()
    assert page.is_enabled("#submit")
    shot(page, "error-timeout.png")
    for route in held:
        try:
            route.abort()
        except Exception:
            pass
    tab.close()


def test_endpoint_down_then_api_down_are_errors(browser, tmp_path):
    """The real front and Lambda handler: first the endpoint goes (the proxy's 503 is shown), then the
    API itself (the page cannot reach it)."""
    fake = FakeEndpoint()
    front = Front(fake.url, tmp_path / "front.log")
    try:
        tab = Page(browser, front.url)
        tab.classify(POSITIVE_REVIEW)
        assert tab.page.text_content("#label") == "Positive"
        fake.close()
        tab.classify(POSITIVE_REVIEW)
        message = tab.error()
        assert message.startswith("The service failed (HTTP 503)") and "cannot be reached" in message
        shot(tab.page, "error-endpoint-down.png")
        front.stop()
        tab.classify(POSITIVE_REVIEW)
        assert "Cannot reach the API" in tab.error()
        assert tab.page.is_enabled("#submit")
        shot(tab.page, "error-api-down.png")
        tab.problems = [p for p in tab.problems if "ERR_CONNECTION_REFUSED" not in p]
        tab.close()
    finally:
        front.stop()
        fake.close()

"""The page in a real browser (Playwright + Debian's Chromium) against local mode and a tiny model.

Screenshots of each state go to ``test-artifacts/browser/``; with ``UPDATE_SCREENSHOTS=1`` the ones the
README shows are also copied to ``docs/screenshots/``. The README's are taken with a model trained on
IMDB rather than the tiny one:

    UPDATE_SCREENSHOTS=1 LOCAL_MODE_MODEL_DIR=.local/model .venv/bin/pytest tests/test_browser.py
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
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

    def __init__(self, browser, url: str, viewport=DESKTOP, clock: bool = False, context=None,
                 before=None, wait_config: bool = True):
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
        if before is not None:  # e.g. routes that must be in place before the page loads
            before(self.page)
        self.page.goto(url + "/")
        if wait_config:
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
    assert page.evaluate("document.activeElement.id") == "review"  # still writing: focus stays
    assert page.is_visible(".shortcut")  # a keyboard, so the shortcut is shown
    tab.close()


def in_view(page, selector: str, timeout: float = 3.0) -> bool:
    """Whether ``selector`` is (or within ``timeout`` scrolls) wholly inside the viewport."""
    deadline = time.monotonic() + timeout
    while True:
        box = page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); "
                                              "return [r.top, r.bottom, window.innerHeight]; }")
        if box[0] >= 0 and box[1] <= box[2]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def test_on_a_phone_the_result_is_brought_into_view_and_focused(browser, local):
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True, service_workers="block")
    tab = Page(browser, local.page_url, context=context)
    page = tab.page
    assert page.is_hidden(".shortcut")  # Ctrl+Enter means nothing on a touch screen
    assert page.is_visible("#byte-count")
    page.fill("#review", NATURAL_NEGATIVE_REVIEW)
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.tap("#submit")
    tab.wait_done()
    assert page.text_content("#label") == "Negative"
    assert in_view(page, "#verdict"), "the verdict is below the fold"
    assert page.evaluate("document.activeElement.id") == "result"  # a screen reader starts there
    tab.close()
    context.close()


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


@pytest.mark.parametrize("status, body, reason", [
    (404, '{"message": "Not Found"}', "HTTP 404"),
    (200, "<html>an error page served as config.json</html>", "Unexpected token"),
    (200, '{"api": "/"}', "no apiUrl in it"),
    (200, '{"apiUrl": 42}', "no apiUrl in it"),
])
def test_a_page_without_its_configuration_says_so_and_sends_nothing(browser, desktop, local, status, body, reason):
    """config.json tells the page where the API is: when it is missing or wrong the page says why
    as soon as it loads, and a review is never sent anywhere."""
    sent = []

    def routes(page):
        page.route("**/config.json", lambda route: route.fulfill(status=status, body=body,
                                                                content_type="application/json"))
        page.on("request", lambda r: sent.append(r.url) if "/predict" in r.url else None)

    tab = Page(browser, local.page_url, context=desktop, before=routes, wait_config=False)
    page = tab.page
    page.wait_for_selector("body[data-state='error']", state="attached")
    message = tab.error()
    assert message.startswith("The page could not read its configuration (config.json: ") and reason in message
    assert "does not know where the API is" in message
    assert page.get_attribute("body", "data-config") is None
    page.fill("#review", POSITIVE_REVIEW)
    page.click("#submit")
    page.click("text=A positive review")
    assert tab.error() == message and page.is_enabled("#submit")
    assert sent == []
    if status == 200:
        shot(page, "error-config.png")
    tab.close()


@pytest.mark.parametrize("status, message, shown", [
    (403, "Missing Authentication Token", "The API refused the review (HTTP 403): Missing Authentication Token"),
    (429, "Too Many Requests", "The API refused the review (HTTP 429): Too Many Requests"),
    (504, "Endpoint request timed out", "The service failed (HTTP 504): Endpoint request timed out"),
    (500, "Internal server error", "The service failed (HTTP 500): Internal server error"),
])
def test_api_gateways_own_errors_show_their_message(browser, desktop, local, status, message, shown):
    """API Gateway answers some failures itself, as {"message": ...} rather than our {"error": ...}:
    throttling, an integration timeout, a path it does not know, a Lambda that failed."""
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    page.route("**/predict", lambda route: route.fulfill(status=status, content_type="application/json",
                                                         body=json.dumps({"message": message})))
    tab.classify("anything")
    assert tab.error() == shown
    tab.close()


def test_a_long_explanation_shows_its_first_words_and_counts_the_rest(browser, desktop, local):
    """The page draws at most 3,000 words of an explanation (a 20,000-word review would make the page
    crawl) and says how many it left out; the top words are still chosen from all of them."""
    explanation = [{"word": f"w{i}", "weight": 0.1} for i in range(4321)]
    explanation[4000] = {"word": "late", "weight": 2.0}
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    page.route("**/predict", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(
        {"label": "positive", "score": 0.9, "words_read": 4321, "explanation": explanation})))
    tab.classify("anything")
    words = page.eval_on_selector_all("#words span.w", "els => els.map(e => e.textContent)")
    assert words == [f"w{i}" for i in range(3000)]
    assert page.text_content("#words .more") == " … and 1,321 more words"
    assert page.text_content("#top-positive li:first-child .top-word") == "late"
    page.route("**/predict", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(
        {"label": "positive", "score": 0.9, "words_read": 3000, "explanation": explanation[:3000]})))
    tab.classify("anything")  # exactly at the limit: nothing left out, nothing to count
    assert len(page.query_selector_all("#words span.w")) == 3000
    assert page.query_selector("#words .more") is None
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


def test_too_large_review_is_refused_before_sending(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    sent = []
    page.on("request", lambda r: sent.append(r.post_data) if r.url.endswith("/predict") else None)
    tab.classify("great " * 25_000)  # 150,000 bytes
    assert page.get_attribute("#byte-count", "class") == "byte-count over"
    assert tab.error() == ("Your review is 150,000 bytes; the limit is 131,000 (about 20,000 words; the model "
                           "reads the first few hundred). Shorten it by 19,000 bytes.")
    assert page.evaluate("document.activeElement.id") == "review"
    shot(page, "error-too-large.png")
    # Quotes (and line breaks) travel as two bytes each in the JSON: under the limit as typed (128,000
    # bytes), over it as sent.
    tab.classify('"great" ' * 16_000)
    assert "160,000 bytes" in tab.error()
    assert sent == []
    # At the limit exactly it is sent, and the API takes it (no 413 from the JSON around it).
    page.uncheck("#explain")
    tab.classify("great " * 21_833 + "ab")
    assert page.text_content("#byte-count") == "131,000 / 131,000 bytes"
    assert page.text_content("#label") == "Positive" and len(sent) == 1
    tab.close()


def test_a_review_with_no_words_read_gets_no_verdict(browser, desktop, local):
    """Emoji and stop words only: the model reads nothing, and the page says so (the real chain)."""
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    for review in ("😀🎬👍 !!!", "and the of it was"):
        tab.classify(review)
        assert page.text_content("#label") == "No words read"
        assert page.is_hidden("#meter-row") and "Negative" not in page.text_content("#result")
        assert "ignores stop words" in page.text_content("#score-text")
        assert page.text_content("#status").startswith("Result: no words read")
    tab.classify(POSITIVE_REVIEW)  # and a review it reads gets its verdict and meter back
    assert page.text_content("#label") == "Positive" and page.is_visible("#meter-row")
    tab.close()


@pytest.mark.parametrize("score, shown", [(0.999991, ">99.9%"), (0.99949, "99.9%"), (0.000004, "<0.1%"),
                                          (0.5, "50%"), (0.0512, "5.1%")])
def test_saturated_scores_are_not_shown_as_certain(browser, desktop, local, score, shown):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    page.route("**/predict", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"label": "positive" if score >= 0.5 else "negative", "score": score, "words_read": 4})))
    tab.classify("anything")
    assert page.text_content("#score-text") == f"{shown} probability that the review is positive"
    assert page.get_attribute("#meter", "aria-valuetext") == f"{shown} positive"
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


# --------------------------------------------------------------------------- accessibility and the keyboard

AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
WCAG21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Every highlight the page draws: levels 1-4 either way (weights relative to the strongest), a word
# that did not matter, and words not read.
EVERY_HIGHLIGHT = {"label": "positive", "score": 0.87, "words_read": 9, "explanation": [
    {"word": w, "weight": x} for w, x in (
        ("superb", 2.0), ("moving", 1.0), ("fine", 0.4), ("story", 0.1), ("plot", 0.01), ("the", None),
        ("dull", -2.0), ("slow", -1.0), ("long", -0.4), ("script", -0.1), ("and", None))]}


def axe_violations(page, include: str = "html") -> list[str]:
    """axe-core's WCAG 2.1 A/AA rules on the page as it is. Injected through the DevTools protocol,
    which the page's CSP (script-src 'self') does not govern: the page itself stays as served."""
    page.evaluate(AXE.read_text())
    found = page.evaluate("([include, tags]) => axe.run(include, {runOnly: {type: 'tag', values: tags}})"
                          ".then(r => r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ') + "
                          "' ' + (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | ')))",
                          [include, WCAG21_AA])
    return found


@pytest.fixture(scope="module")
def axe_ready():
    if not AXE.is_file():
        pytest.skip(f"{AXE} is missing: run `npm install` (axe-core is a devDependency in package.json)")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_accessibility_violations_with_a_result_shown(browser, local, axe_ready, scheme, viewport):
    context = browser.new_context(viewport=viewport, color_scheme=scheme, service_workers="block")
    tab = Page(browser, local.page_url, context=context)
    page = tab.page
    assert page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches")
    assert axe_violations(page) == []  # before any result
    page.route("**/predict", lambda route: route.fulfill(status=200, content_type="application/json",
                                                         body=json.dumps(EVERY_HIGHLIGHT)))
    tab.classify("anything")
    drawn = set(page.eval_on_selector_all("#words span.w", "els => els.map(e => e.className)"))
    assert drawn == {f"w {kind}-{n}" for kind in ("pos", "neg") for n in (1, 2, 3, 4)} | {"w zero", "w none"}
    assert axe_violations(page) == []
    page.unroute("**/predict")
    tab.classify(POSITIVE_REVIEW)  # a real answer too
    assert page.text_content("#label") == "Positive"
    assert axe_violations(page) == []
    tab.classify("   ")  # and an error
    assert axe_violations(page) == []
    page.click("text=Model card")
    page.wait_for_selector("#model-card")
    assert axe_violations(page) == []
    tab.close()
    context.close()


def focus_ring(page) -> tuple[str, str, float]:
    return tuple(page.evaluate("(() => { const e = document.activeElement, s = getComputedStyle(e); "
                               "return [e.id || e.textContent.trim(), s.outlineStyle, parseFloat(s.outlineWidth)]; })()"))


def test_keyboard_order_visible_focus_and_the_result_announced(browser, local):
    tab = Page(browser, local.page_url)
    page = tab.page
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        name, style, width = focus_ring(page)
        order.append(name)
        assert style != "none" and width >= 2, f"{name}: no visible focus ({style} {width}px)"
    assert order == ["review", "explain", "submit", "A positive review", "A negative review", "A mixed review",
                     "Model card", "API documentation"]
    for _ in range(5):  # and back, the same way
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.focus("#review")
    page.keyboard.insert_text(NATURAL_NEGATIVE_REVIEW)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden])")
    # Announced: a polite live region says the outcome; focus moves to the result, which is labelled.
    assert page.get_attribute("#status", "role") == "status"
    assert page.get_attribute("#status", "aria-live") == "polite"
    assert re.fullmatch(r"Result: Negative, [\d.<>]+% probability positive\.", page.text_content("#status"))
    assert page.evaluate("document.activeElement.id") == "result"
    assert page.get_attribute("#result", "aria-labelledby") == "result-title"
    assert focus_ring(page)[1] != "none"
    page.keyboard.press("Tab")  # on from the result, not back to the top
    assert page.evaluate("document.activeElement.textContent") == "Model card"
    tab.close()


def test_footer_links_to_the_model_card_and_the_api(browser, desktop, local):
    tab = Page(browser, local.page_url, context=desktop)
    page = tab.page
    page.click("text=Model card")
    page.wait_for_selector("#model-card h2")
    assert page.url.endswith("/about.html#model-card")
    # the page shows the card's figure (tests/test_local_front.py holds about.html to docs/model-card.md)
    assert page.text_content("#model-card h2") == "Model card" and "IMDB test reviews right" in page.text_content("#model-card")
    assert re.search(r"\d\d\.\d% of the 25,000 IMDB test reviews", page.text_content("#model-card"))
    page.go_back()
    page.wait_for_selector("body[data-config='loaded']")
    page.click("text=API documentation")
    page.wait_for_selector("#api h2")
    assert page.url.endswith("/about.html#api") and "words_read" in page.text_content("#api")
    tab.close()

"""The web page in a real browser: headless Chromium, driven by selenium, against a real server.

    .venv/bin/python -m pytest tests/test_browser.py -q -m browser

The server (uvicorn, in a thread) serves the session's tiny RNN, LSTM and GRU on a free
port of 127.0.0.1. Debian's /usr/bin/chromium and /usr/bin/chromedriver are used as they
are (selenium-manager never downloads anything); without them the tests skip. Screenshots
are written to test-artifacts/ in the repository root.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from namelab.serve import bind_socket, create_app, load_served_models

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)),
        reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)",
    ),
    pytest.mark.skipif(
        not (CHROMEDRIVER.is_file() and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"no chromedriver at {CHROMEDRIVER} (Debian: apt-get install chromium-driver)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT_S = 20  # generous: the CI machine is shared; a passing run waits far less


@pytest.fixture(scope="module")
def server_url(tiny_runs: dict[str, Path]) -> Iterator[str]:
    import uvicorn

    app = create_app(load_served_models([tiny_runs["rnn"], tiny_runs["lstm"], tiny_runs["gru"]]))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for the module (starting one takes seconds); each test loads the page anew."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(browser, url: str):
    browser.set_window_size(1200, 900)
    browser.get(url + "/")
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    return browser.find_element(By.ID, "name")


TOP_LANGUAGES_JS = """
const out = {};
for (const card of document.querySelectorAll("section.card")) {
  const bar = card.querySelector("li.bar");
  out[card.dataset.model] = bar ? bar.dataset.language : null;
}
return out;
"""


def top_languages(browser) -> dict[str, str | None]:
    """``{model: language of its first bar}`` as the page shows them, read in one step (no stale elements)."""
    return browser.execute_script(TOP_LANGUAGES_JS)


def shows(browser, name: str, languages: dict[str, str | None]) -> bool:
    """The page has rendered the answer for ``name`` (its results line) with these top languages."""
    status = browser.find_element(By.ID, "status").text
    return status.startswith(f"{name}:") and top_languages(browser) == languages


def screenshot(browser, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / name)), f"could not save {ARTIFACTS / name}"


def test_typing_a_name_shows_each_models_bars(browser, server_url: str):
    box = open_page(browser, server_url)
    cards = browser.find_elements(By.CSS_SELECTOR, "section.card")
    assert [c.get_attribute("data-model") for c in cards] == ["rnn", "lstm", "gru"]
    assert "test accuracy" in cards[1].find_element(By.CSS_SELECTOR, ".facts").text

    box.send_keys("Bdkgt")
    # The status line names the text it answers, so this waits for the last keystroke's answer.
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Bdkgt", {"rnn": "Beta", "lstm": "Beta", "gru": "Beta"}))
    lstm = browser.find_element(By.CSS_SELECTOR, 'section.card[data-model="lstm"]')
    bars = lstm.find_elements(By.CSS_SELECTOR, "li.bar")
    assert len(bars) == 3  # the default top-k
    probabilities = [float(b.get_attribute("data-probability")) for b in bars]
    assert probabilities == sorted(probabilities, reverse=True)
    assert "Beta" in bars[0].text and "%" in bars[0].text
    # the bar's drawn width follows its probability
    fill = bars[0].find_element(By.CSS_SELECTOR, ".fill")
    track = bars[0].find_element(By.CSS_SELECTOR, ".track")
    assert fill.size["width"] == pytest.approx(probabilities[0] * track.size["width"], abs=3)
    # one shaded letter per character, and the results line is announced
    letters = lstm.find_elements(By.CSS_SELECTOR, ".word span")
    assert "".join(s.text for s in letters) == "Bdkgt"
    assert any(float(s.get_attribute("data-drop")) != 0 for s in letters)
    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("aria-live") == "polite"
    assert "lstm: Beta" in status.text
    screenshot(browser, "browser-predict.png")

    # keep typing: the page follows the newest text
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Lmnrs")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Lmnrs", {"rnn": "Gamma", "lstm": "Gamma", "gru": "Gamma"}))


def test_a_name_without_letters_shows_its_error(browser, server_url: str):
    box = open_page(browser, server_url)
    box.send_keys("1234")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT_S).until(lambda d: "no letters" in status.text)
    assert "error" in status.get_attribute("class")
    assert set(top_languages(browser).values()) == {None}


def test_keyboard_and_phone_sized_window(browser, server_url: str):
    box = open_page(browser, server_url)
    assert browser.switch_to.active_element == box  # autofocus: type at once
    box.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "top-k"
    assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) == "solid"
    focused.send_keys(Keys.ARROW_UP)  # 3 -> 2 languages, by keyboard alone
    box.send_keys("Aeiou")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Aeiou", {"rnn": "Alpha", "lstm": "Alpha", "gru": "Alpha"}))
    assert len(browser.find_elements(By.CSS_SELECTOR, 'section.card[data-model="gru"] li.bar')) == 2

    browser.set_window_size(390, 844)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return window.innerWidth") <= 400)
    no_sideways_scroll = "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    assert browser.execute_script(no_sideways_scroll)
    lefts = {c.location["x"] for c in browser.find_elements(By.CSS_SELECTOR, "section.card")}
    assert len(lefts) == 1, "on a phone-sized window the model cards stack in one column"
    screenshot(browser, "browser-phone.png")

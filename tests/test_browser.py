"""The web page in a real browser: headless Chromium, driven by selenium, against a real server.

    .venv/bin/python -m pytest tests/test_browser.py -q -m browser

The server (uvicorn, in a thread, configured as `namelab serve` does) serves the session's
tiny RNN, LSTM and GRU on a free port of 127.0.0.1. Debian's /usr/bin/chromium and
/usr/bin/chromedriver are used as they are (selenium-manager never downloads anything);
without them the tests skip. The browser resolves no host name but 127.0.0.1, so nothing
the page or /docs needs may come from the network. Screenshots (1280×900 and 390×844) are
written to test-artifacts/ in the repository root.
"""

from __future__ import annotations

import csv
import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from helpers import CHROMEDRIVER, CHROMIUM

from namelab.inference.schema import DEFAULT_TOP_K, flat_columns
from namelab.serve import bind_socket, create_app, load_served_models, server_config

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DESKTOP = (1280, 900)
PHONE = (390, 844)

# A fixture, not a skipif: conftest's ``chromium`` skips where Chromium is missing, and fails under CI.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("chromium")]

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the chromium fixture says so, test by test
    webdriver = None

WAIT_S = 20  # generous: the CI machine is shared; a passing run waits far less


class LiveServer:
    """``app`` under uvicorn in a thread, on a free port of 127.0.0.1, until :meth:`stop`."""

    def __init__(self, app):
        self.sock = bind_socket("127.0.0.1", 0)
        self.server = uvicorn.Server(server_config(app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the test server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def served(tiny_runs: dict[str, Path]):
    return load_served_models([tiny_runs["rnn"], tiny_runs["lstm"], tiny_runs["gru"]])


@pytest.fixture(scope="module")
def server_url(served) -> Iterator[str]:
    server = LiveServer(create_app(served))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


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
        # No network: a name that is not 127.0.0.1 resolves to nothing (CDNs, fonts, anything).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(browser, size: tuple[int, int]) -> None:
    """Make the page's viewport exactly ``size`` (a phone's is also touch-sized: mobile emulation)."""
    width, height = size
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == PHONE},
    )


def open_page(browser, url: str, query: str = ""):
    set_viewport(browser, DESKTOP)
    browser.get(url + "/" + query)
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


def served_order(url: str) -> tuple[list[str], str]:
    """The models as the page lists them (best validation accuracy first, ties in served order) and the lead's name."""
    models = httpx.get(f"{url}/api/models", timeout=WAIT_S).json()["models"]
    order = sorted(range(len(models)), key=lambda i: (-(models[i]["best_val_accuracy"] or -1), i))
    return [models[i]["name"] for i in order], next(m["name"] for m in models if m["lead"])


def open_all_models(browser) -> None:
    """Unfold "All models", where every model but the lead waits folded."""
    browser.execute_script("document.getElementById('all-models').open = true")


def top_languages(browser) -> dict[str, str | None]:
    """``{model: language of its first bar}`` as the page shows them, read in one step (no stale elements)."""
    return browser.execute_script(TOP_LANGUAGES_JS)


def shows(browser, name: str, languages: dict[str, str | None] | None = None) -> bool:
    """The page has rendered the answer for ``name`` (its results line), with these top languages if given."""
    status = browser.find_element(By.ID, "status").get_attribute("textContent")
    answered = status.startswith(f"{name}:") or status.startswith(f"{name} (read as")
    return answered and (languages is None or top_languages(browser) == languages)


def api_answer(url: str, name: str) -> dict:
    """The API's answer for one name, as the page asks for it."""
    response = httpx.post(f"{url}/api/predict", json={"names": [name], "top_k": 3}, timeout=WAIT_S)
    return response.json()["results"][0]


def screenshot(browser, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / name)), f"could not save {ARTIFACTS / name}"


def no_request_left_the_server(browser, url: str) -> bool:
    """Every script, style sheet and fetch the page used came from the server.

    Images are left out: ReDoc's footer names its logo on a CDN, which the docs' content
    security policy blocks (it is recorded all the same); the page renders without it.
    """
    entries = browser.execute_script(
        "return performance.getEntriesByType('resource').filter((e) => e.initiatorType !== 'img').map((e) => e.name)"
    )
    return all(entry.startswith(url) or entry.startswith(("blob:", "data:")) for entry in entries)


# -- one name ---------------------------------------------------------------------------------


def test_typing_a_name_shows_each_models_bars(browser, server_url: str):
    box = open_page(browser, server_url)
    order, lead = served_order(server_url)
    assert order[0] == lead
    open_all_models(browser)
    cards = browser.find_elements(By.CSS_SELECTOR, "section.card")
    assert [c.get_attribute("data-model") for c in cards] == order  # the lead first, then best first
    assert "validation accuracy" in cards[1].find_element(By.CSS_SELECTOR, ".facts").text
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
    for bar, p in zip(bars, probabilities):  # never "0.0%" for a probability that is not zero
        shown = bar.find_element(By.CSS_SELECTOR, ".pct").text
        assert shown == "<0.1%" if p < 0.001 else shown != "0.0%", (p, shown)
    # the bar's drawn width follows its probability
    fill = bars[0].find_element(By.CSS_SELECTOR, ".fill")
    track = bars[0].find_element(By.CSS_SELECTOR, ".track")
    assert fill.size["width"] == pytest.approx(probabilities[0] * track.size["width"], abs=3)
    # one shaded letter per character, and the results line is announced
    letters = lstm.find_elements(By.CSS_SELECTOR, ".word button")
    assert "".join(s.text for s in letters) == "Bdkgt"
    assert any(float(s.get_attribute("data-drop")) != 0 for s in letters)
    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("aria-live") == "polite"
    assert "lstm: Beta" in status.get_attribute("textContent")
    # the compact summary: every model's top language, and whether they agree
    summary = browser.find_element(By.ID, "summary")
    assert [r.get_attribute("data-model") for r in summary.find_elements(By.CSS_SELECTOR, "tr")] == order
    assert "All 3 models agree: Beta" in summary.text
    answer = browser.find_element(By.ID, "lead")
    assert answer.get_attribute("data-model") == lead and answer.get_attribute("data-language") == "Beta"
    assert f"Best model: {lead}" in answer.text and answer.get_attribute("data-disagree") == "false"
    # the address is the shareable link of what is shown
    assert browser.current_url.endswith("/?name=Bdkgt")
    assert no_request_left_the_server(browser, server_url)
    screenshot(browser, "page-desktop-1280x900.png")

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


def test_blank_input_says_what_to_do(browser, server_url: str):
    box = open_page(browser, server_url)
    box.send_keys(Keys.ENTER)
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT_S).until(lambda d: "Type a surname first" in status.text)
    assert "error" in status.get_attribute("class")


def test_clicking_an_example_where_the_models_disagree_marks_it_uncertain(browser, server_url: str):
    open_page(browser, server_url)
    examples = browser.find_elements(By.CSS_SELECTOR, "#examples button")
    assert len(examples) >= 2
    disagreeing = [e for e in examples if e.get_attribute("data-agree") == "false"]
    assert disagreeing, "the tiny models disagree on some of the example surnames"
    name = disagreeing[0].get_attribute("data-name")
    assert "models disagree" in disagreeing[0].text
    disagreeing[0].click()
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, name))
    assert browser.find_element(By.ID, "name").get_attribute("value") == name
    # the lead answer carries the disagreement flag; the other models are folded until asked for
    answer = browser.find_element(By.ID, "lead")
    assert answer.get_attribute("data-disagree") == "true" and "models disagree" in answer.text
    assert browser.find_element(By.ID, "all-models").get_attribute("open") is None
    open_all_models(browser)
    summary = browser.find_element(By.ID, "summary")
    assert summary.get_attribute("data-agree") == "false"
    assert "The models disagree" in summary.text
    # the uncertain marks are the API's flags, on the summary and on each card
    expected = api_answer(server_url, name)["uncertain"]
    assert any(expected.values()), "a disagreement among the tiny models comes with a probability under 50 %"
    lead = answer.get_attribute("data-model")
    assert answer.get_attribute("data-uncertain") == str(expected[lead]).lower()
    assert ("uncertain" in answer.text) == expected[lead]
    for model, uncertain in expected.items():
        row = summary.find_element(By.CSS_SELECTOR, f'tr[data-model="{model}"]')
        assert row.get_attribute("data-uncertain") == str(uncertain).lower(), model
        heading = browser.find_element(By.CSS_SELECTOR, f'section.card[data-model="{model}"] h2')
        assert ("uncertain" in heading.text) == uncertain, model
    screenshot(browser, "page-disagreement-1280x900.png")


def test_a_link_opens_with_its_query_and_the_page_copies_its_link(browser, server_url: str):
    open_page(browser, server_url, "?name=Bdkgt&k=2")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Bdkgt", {"rnn": "Beta", "lstm": "Beta", "gru": "Beta"}))
    assert browser.find_element(By.ID, "name").get_attribute("value") == "Bdkgt"
    assert browser.find_element(By.ID, "top-k").get_attribute("value") == "2"
    assert len(browser.find_elements(By.CSS_SELECTOR, 'section.card[data-model="gru"] li.bar')) == 2
    button = browser.find_element(By.ID, "copy-link")
    button.click()
    WebDriverWait(browser, WAIT_S).until(lambda d: button.get_attribute("data-link"))
    assert button.get_attribute("data-link") == f"{server_url}/?name=Bdkgt&k=2"


def test_punctuation_and_cut_input_are_pointed_out(browser, server_url: str):
    box = open_page(browser, server_url)
    box.send_keys("'Aeiou'")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "'Aeiou'"))
    note = browser.find_element(By.CSS_SELECTOR, "#notes .note-punctuation")
    assert "read as part of it" in note.text
    note.find_element(By.TAG_NAME, "button").click()  # "Try “Aeiou”"
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Aeiou"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#notes .note-punctuation")

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Ab1cd")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Ab1cd"))
    assert "“1” are not letters" in browser.find_element(By.ID, "notes").text

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Bdkgt" * 14)  # 70 characters
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#notes .note-cut"))
    cut = browser.find_element(By.CSS_SELECTOR, "#notes .note-cut").text
    assert "Only the first 64 characters were read; the text has 70." == cut
    letters = browser.find_elements(By.CSS_SELECTOR, 'section.card[data-model="rnn"] .word button')
    assert len(letters) == 64


def test_letter_values_are_reachable_by_keyboard_and_touch(browser, server_url: str):
    box = open_page(browser, server_url)
    box.send_keys("Bdkgt")
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, "Bdkgt"))
    open_all_models(browser)
    card = browser.find_element(By.CSS_SELECTOR, 'section.card[data-model="gru"]')
    letters = card.find_elements(By.CSS_SELECTOR, ".word button")
    assert [b.get_attribute("tabindex") for b in letters] == ["0"] + ["-1"] * 4  # one tab stop per word
    detail = card.find_element(By.CSS_SELECTOR, ".letter-detail")
    assert {b.get_attribute("aria-pressed") for b in letters} == {"false"}
    letters[0].click()  # a tap
    assert detail.text.startswith("“B” (letter 1): ") and "points for" in detail.text
    # the clicked letter stays visibly marked: pressed, with an outline the others lack
    assert [b.get_attribute("aria-pressed") for b in letters] == ["true"] + ["false"] * 4
    outline = "return getComputedStyle(arguments[0]).outlineStyle"
    assert browser.execute_script(outline, letters[0]) == "solid" and browser.execute_script(outline, letters[2]) == "none"
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert browser.switch_to.active_element.text == "d"
    assert detail.text.startswith("“d” (letter 2): ")
    assert letters[1].get_attribute("aria-label") == detail.text
    letters[2].click()
    assert [b.get_attribute("aria-pressed") for b in letters] == ["false", "false", "true", "false", "false"]


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

    open_all_models(browser)
    set_viewport(browser, PHONE)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return window.innerWidth") == PHONE[0])
    no_sideways_scroll = "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    assert browser.execute_script(no_sideways_scroll)
    lefts = {c.location["x"] for c in browser.find_elements(By.CSS_SELECTOR, "section.card")}
    assert len(lefts) == 1, "on a phone-sized window the model cards stack in one column"
    # the lead answer is on the first screen, above the cards and the other models' summary
    answer = browser.find_element(By.ID, "lead")
    first_card = browser.find_element(By.CSS_SELECTOR, "section.card")
    summary = browser.find_element(By.ID, "summary")
    assert len(summary.find_elements(By.CSS_SELECTOR, "tr")) == 3
    assert answer.location["y"] < first_card.location["y"] < summary.location["y"]
    assert answer.location["y"] + answer.size["height"] <= PHONE[1]


LEAD_BOTTOM_JS = "const r = document.getElementById('lead').getBoundingClientRect(); return [r.top, r.bottom, innerHeight];"


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280x900", "390x844"])
def test_one_lead_answer_is_above_the_fold(browser, server_url: str, size: tuple[int, int]):
    open_page(browser, server_url)
    set_viewport(browser, size)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return window.innerWidth") == size[0])
    example = browser.find_element(By.CSS_SELECTOR, "#examples button")  # the page's own first example
    name = example.get_attribute("data-name")
    example.click()
    WebDriverWait(browser, WAIT_S).until(lambda d: shows(d, name))
    _, lead = served_order(server_url)
    answers = [a for a in browser.find_elements(By.CSS_SELECTOR, ".lead-answer") if a.is_displayed()]
    assert len(answers) == 1 and answers[0].get_attribute("data-model") == lead
    assert f"Best model: {lead}" in answers[0].text
    expected = api_answer(server_url, name)["predictions"][lead][0]["language"]
    assert answers[0].get_attribute("data-language") == expected
    top, bottom, height = browser.execute_script(LEAD_BOTTOM_JS)
    assert 0 <= top and bottom <= height == size[1], (top, bottom, height)
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(browser, f"page-lead-{size[0]}x{size[1]}.png")
    if size == PHONE:
        screenshot(browser, "page-phone-390x844.png")


def test_a_server_that_went_away_is_named_as_such(browser, served):
    server = LiveServer(create_app(served))
    box = open_page(browser, server.url)
    server.stop()
    box.send_keys("Aeiou")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT_S).until(lambda d: "cannot be reached" in status.text)
    assert "Failed to fetch" not in status.text


# -- many names -----------------------------------------------------------------------------


def download_csv(browser, folder: Path) -> list[dict]:
    """Click the page's download button; the CSV it saves (into ``folder``, which must be new), as rows."""
    folder.mkdir(parents=True)
    # A folder per download: Chromium overwrites a file of the same name when told where to save.
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    browser.find_element(By.ID, "batch-download").click()
    path = folder / "namelab-predictions.csv"
    WebDriverWait(None, WAIT_S).until(lambda _: path.is_file() and not list(folder.glob("*.crdownload")))
    text = path.read_bytes().decode("utf-8")  # as saved: CRLF records
    assert browser.execute_script("return window.namelabDownload") == text  # the page's own copy of what it saved
    return list(csv.DictReader(io.StringIO(text, newline="")))


def table_rows(browser) -> list[list[str]]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#batch-table tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent))"
    )


def check_batch(
    browser, server_url: str, downloads: Path, names: list[str], expected: dict[str, str],
    inputs: list[list[str]] | None = None, columns: tuple[str, ...] = ("name",), name_column: str = "name",
) -> None:
    """The table and the downloaded CSV hold one row per input row, every input column kept, with the API's answers."""
    WebDriverWait(browser, WAIT_S).until(lambda d: "names classified" in d.find_element(By.ID, "batch-status").text)
    inputs = inputs or [[n] for n in names]
    order, lead = served_order(server_url)
    others = [m for m in order if m != lead]
    coverage = all(m["coverage"] for m in httpx.get(f"{server_url}/api/models", timeout=WAIT_S).json()["models"])
    rows = table_rows(browser)
    width = len(columns)
    assert [row[1 : 1 + width] for row in rows] == inputs  # every input column, in order
    header = browser.execute_script(
        "return [...document.querySelectorAll('#batch-table thead th')].map((th) => th.textContent)"
    )
    assert header == ["#", *columns, "Read as", f"{lead} (best)", "Uncertain", *others, "Models agree", "Note"]
    records = download_csv(browser, downloads / str(len(list(downloads.iterdir()))))
    assert [r[name_column] for r in records] == names
    # the flat schema of every surface, then each other model's top answer
    want = flat_columns(list(columns), DEFAULT_TOP_K, coverage=coverage)
    want += [f"{m}:{field}_1" for m in others for field in ("language", "probability")]
    assert list(records[0]) == want
    assert [[r[c] for c in columns] for r in records] == inputs
    for record, row in zip(records, rows):
        name = record[name_column]
        if name in expected:
            assert record["language_1"] == expected[name]
            for model in others:
                assert record[f"{model}:language_1"] == expected[name], (name, model)
            assert row[-2] == "yes"
            answer = api_answer(server_url, name)
            # 4 decimals, as on every flat surface; equal up to the last digit (batches add in another order)
            assert len(record["probability_1"].split(".")[1]) == 4
            assert float(record["probability_1"]) == pytest.approx(answer["predictions"][lead][0]["probability"], abs=1.01e-4)
            assert record["uncertain"] == str(answer["uncertain"][lead]).lower()
            assert record["error"] == ""
        else:
            assert "no letters" in record["error"] and "no letters" in row[-1]
            assert record["language_1"] == "" and record["uncertain"] == ""


def test_batch_of_pasted_names_and_its_csv(browser, server_url: str, downloads: Path, known_names):
    open_page(browser, server_url)
    browser.find_element(By.ID, "tab-many").click()
    area = browser.find_element(By.ID, "batch-text")
    area.send_keys("Aeiou\nBdkgt, Lmnrs\n\n1234\n")
    browser.find_element(By.ID, "batch-run").click()
    check_batch(browser, server_url, downloads, ["Aeiou", "Bdkgt", "Lmnrs", "1234"], known_names)
    assert "the models agree on 3" in browser.find_element(By.ID, "batch-status").text
    screenshot(browser, "page-batch-1280x900.png")
    set_viewport(browser, PHONE)
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(browser, "page-batch-phone-390x844.png")


def test_batch_from_an_uploaded_csv(browser, server_url: str, downloads: Path, tmp_path: Path, known_names):
    upload = tmp_path / "people.csv"
    upload.write_text('id,surname,note\n1,Lmnrs,"a, b"\n2,"Aeiou",x\n3,1234,\n4,Bdkgt,"say ""hi"""\n', encoding="utf-8")
    open_page(browser, server_url)
    browser.find_element(By.ID, "tab-many").click()
    browser.find_element(By.ID, "batch-file").send_keys(str(upload))
    inputs = [["1", "Lmnrs", "a, b"], ["2", "Aeiou", "x"], ["3", "1234", ""], ["4", "Bdkgt", 'say "hi"']]
    check_batch(browser, server_url, downloads, ["Lmnrs", "Aeiou", "1234", "Bdkgt"], known_names,
                inputs, ("id", "surname", "note"), "surname")
    screenshot(browser, "page-batch-upload-1280x900.png")


def test_pasting_several_lines_into_the_name_box_classifies_them_as_a_list(browser, server_url: str):
    box = open_page(browser, server_url)
    browser.execute_script(
        """const data = new DataTransfer(); data.setData("text/plain", "Aeiou\\nBdkgt\\n");
        arguments[0].dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));""",
        box,
    )
    WebDriverWait(browser, WAIT_S).until(lambda d: "names classified" in d.find_element(By.ID, "batch-status").text)
    assert [row[1] for row in table_rows(browser)] == ["Aeiou", "Bdkgt"]  # the one input column: name
    assert browser.find_element(By.ID, "tab-many").get_attribute("aria-selected") == "true"


# -- the documentation ------------------------------------------------------------------------


def test_docs_and_redoc_render_without_network(browser, server_url: str):
    set_viewport(browser, DESKTOP)
    browser.get(server_url + "/docs")
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "namelab" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    WebDriverWait(browser, WAIT_S).until(lambda d: "/api/predict" in d.find_element(By.TAG_NAME, "body").text)
    assert no_request_left_the_server(browser, server_url)
    screenshot(browser, "docs-1280x900.png")

    browser.get(server_url + "/redoc")
    WebDriverWait(browser, WAIT_S).until(lambda d: "Rank the languages of names" in d.find_element(By.TAG_NAME, "body").text)
    assert no_request_left_the_server(browser, server_url)

    open_page(browser, server_url)
    link = browser.find_element(By.LINK_TEXT, "API")
    assert link.get_attribute("href") == server_url + "/docs"

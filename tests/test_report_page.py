"""The report as a student and a phone meet it: takeaways in plain words, contents, tables that
scroll in their own box, sharp figures with legible ticks.

    .venv/bin/python -m pytest tests/test_report_page.py -q     # -m browser: the phone test alone

The report is rendered from docs/compare-summary.json (a real `make demo` summary, seed and
accuracy suites) and from small edits of it, so every branch of the takeaways is reached
without training anything.
"""

from __future__ import annotations

import copy
import html
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from namelab.report.common import DPI, MIN_FONT_PT, new_figure, png_bytes
from namelab.report.document import make_figures
from namelab.report.render import anchors, png_size, slug, write_report
from namelab.report.takeaways import gating_sentence, takeaways

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
OLD_DPI = 110  # before figures were drawn at twice their shown size
PHONE = (390, 844)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def summary() -> dict:
    return json.loads((REPO / "docs" / "compare-summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(summary: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(summary, out)
    return out


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


# -- takeaways -------------------------------------------------------------------------------


def test_takeaways_carry_the_summarys_numbers(summary: dict) -> None:
    sentences = takeaways(summary)
    text = " ".join(sentences)
    results = summary["results"]
    ranked = sorted(results, key=lambda m: -results[m]["test_accuracy"]["mean"])
    assert sentences[0].endswith(
        ", ".join(f"{m.upper()} {pct(results[m]['test_accuracy']['mean'])}" for m in ranked) + "."
    )
    best = max(summary["accuracy"]["rows"].values(), key=lambda row: row["test_accuracy"]["mean"])
    assert f"The most accurate model is the {best['title']}: {pct(best['test_accuracy']['mean'])}" in text
    assert f"calibration error on test is {pct(best['ece_after']['mean'])}" in text
    assert f"true language for {pct(best['coverage']['mean'])}" in text
    ranking = next(f for f in summary["findings"] if f["key"] == "accuracy_ranking")
    gru_rnn = next(p for p in ranking["pairs"] if (p["first"], p["second"]) == ("gru", "rnn"))
    assert f"the GRU by {100 * gru_rnn['mean']:.1f} points" in text and text.count("Gating helps") == 1
    verdicts = [f["verdict"] for f in summary["findings"]]
    assert f"{verdicts.count('supported')} hold, {verdicts.count('not supported')} do not" in text
    for finding in summary["findings"]:
        assert (finding["claim"].split(" (")[0] in text) == (finding["verdict"] == "not supported")


def test_takeaways_follow_the_verdicts_not_the_means(summary: dict) -> None:
    noisy = copy.deepcopy(summary)
    ranking = next(f for f in noisy["findings"] if f["key"] == "accuracy_ranking")
    for pair in ranking["pairs"]:
        pair["outcome"] = "noise"
    assert gating_sentence(noisy).startswith("Whether gating helps is not clear")
    for pair in ranking["pairs"]:
        if pair["second"] == "rnn":
            pair.update(mean=-pair["mean"], outcome="b")
    assert gating_sentence(noisy).startswith("Gating does not help here: the plain RNN is clearly ahead")


def test_a_quick_run_says_so_and_a_summary_without_suites_data_keeps_what_it_has(summary: dict) -> None:
    quick = {**summary, "quick": True}
    assert takeaways(quick)[0].startswith("This is a --quick smoke run")
    seed_only = {k: v for k, v in summary.items() if k != "accuracy"} | {"suites": ["seed"]}
    text = " ".join(takeaways(seed_only))
    assert "most accurate model" not in text and "Ranked by test accuracy" in text


def test_the_takeaways_box_opens_both_reports(report: Path, summary: dict) -> None:
    page = (report / "report.html").read_text(encoding="utf-8")
    markdown = (report / "report.md").read_text(encoding="utf-8")
    first = takeaways(summary)[0]
    assert page.index('<aside class="takeaways"') < page.index("<nav class=\"toc\"") < page.index("<h2 id=\"findings")
    assert html.escape(first) in page
    assert markdown.split("\n\n")[1] == "## Takeaways" and f"> - {first}" in markdown


# -- contents --------------------------------------------------------------------------------


def test_every_contents_link_lands_on_a_heading(report: Path) -> None:
    page = (report / "report.html").read_text(encoding="utf-8")
    toc = re.search(r'<nav class="toc".*?</nav>', page).group(0)
    links = re.findall(r'href="#([^"]+)"', toc)
    heading_ids = re.findall(r'<h2 id="([^"]+)">', page)
    assert len(heading_ids) == len(set(heading_ids)) > 8
    assert links == [i for i in heading_ids if i != "takeaways"]
    markdown = (report / "report.md").read_text(encoding="utf-8")
    md_links = re.findall(r"\]\(#([^)]+)\)", markdown)
    md_headings = [slug(line[3:]) for line in markdown.splitlines() if line.startswith("## ") and line != "## Takeaways"]
    assert md_links == md_headings


def test_slugs_are_githubs_and_repeated_titles_stay_apart() -> None:
    assert slug("Gradient flow: the vanishing-gradient argument, measured") == (
        "gradient-flow-the-vanishing-gradient-argument-measured"
    )
    assert slug("How findings are judged") == "how-findings-are-judged"
    assert [a for _, a in anchors([("h2", "Cost"), ("h2", "Cost"), ("h3", "Cost")])] == ["cost", "cost-1"]


# -- phone layout and figures ----------------------------------------------------------------


def test_every_table_scrolls_in_its_own_box_and_the_page_fits_a_phone(report: Path) -> None:
    page = (report / "report.html").read_text(encoding="utf-8")
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>') > 5
    assert ".table-wrap { overflow-x: auto; max-width: 100%;" in page
    assert "img { max-width: 100%; height: auto; }" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_figures_are_drawn_at_twice_the_old_resolution_and_shown_at_their_old_size(report: Path, summary: dict) -> None:
    fig, _ = new_figure(6.4, 4.0)
    assert png_size(png_bytes(fig)) == (2 * round(6.4 * OLD_DPI), 2 * round(4.0 * OLD_DPI))
    from PIL import Image

    pngs = sorted((report / "figures").glob("*.png"))
    names = {path.stem for path in pngs}
    assert names == set(make_figures(summary)) and {"loss", "realworld-roc"} <= names  # every figure, once
    for path in pngs:
        image = Image.open(io.BytesIO(path.read_bytes()))
        assert round(image.info["dpi"][0]) >= 2 * OLD_DPI == DPI, path.name
    page = (report / "report.html").read_text(encoding="utf-8")
    width, height = png_size((report / "figures" / "loss.png").read_bytes())
    assert f'width="{width // 2}" height="{height // 2}"' in page


def test_tick_labels_and_legends_are_never_below_nine_points() -> None:
    fig, (ax,) = new_figure(4, 3)
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set_xticks([0, 1], ["zero", "one"], fontsize=7)
    ax.legend(fontsize=6)
    png_bytes(fig)
    sizes = [t.get_fontsize() for t in (*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.get_legend().get_texts())]
    assert min(sizes) >= MIN_FONT_PT == 9


def test_make_demo_ends_by_printing_the_serve_command() -> None:
    recipe = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert recipe.rstrip().splitlines()[-1].strip().startswith("@echo")
    assert "namelab serve reports/compare" in recipe.rstrip().splitlines()[-1]


# -- in a browser, at a phone's width --------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(
    not all(p.is_file() and os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)),
    reason="no /usr/bin/chromium and /usr/bin/chromedriver (Debian: apt-get install chromium chromium-driver)",
)
def test_the_report_has_no_sideways_scroll_on_a_phone(report: Path, tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
                 f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True},
        )
        driver.get((report / "report.html").as_uri())
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " Math.max(...[...document.querySelectorAll('.table-wrap')].map(d => d.scrollWidth))];"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report-390.png"))
        driver.execute_script("document.querySelector('.table-wrap').scrollIntoView()")
        assert driver.save_screenshot(str(ARTIFACTS / "report-390-table.png"))
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    page_width, viewport, widest_table = widths
    assert page_width <= PHONE[0] and viewport <= PHONE[0]
    assert widest_table > PHONE[0]  # a table wider than the phone is there, and scrolls in its box

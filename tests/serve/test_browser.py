"""The page in a real browser: Debian's headless ``chromium`` (driven by selenium through
Debian's ``chromium-driver``) on a running ``fossil serve --models tiny`` bound to 127.0.0.1.

It uploads a picture, segments it, checks that the overlay and legend appear, clicks a region
on the picture and checks that reference thumbnails show, saves a screenshot under
``tests/artifacts/`` (ignored by git), then lists two concepts' references in the References
tab.  Skipped when chromium, chromium-driver or selenium is
missing, except under ``CI=true`` (``.ci/run`` installs chromium), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from fossil.config import CollectionSettings
from fossil.db.catalog import SqlCatalog
from fossil.db.open import store_catalog_url
from tests.serve.conftest import park

ABOUT = CollectionSettings(about="a tiny test collection", examples=("dog", "car", "tree"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so the browser test must run", pytrace=False)
    pytest.skip(f"{reason} (apt-get install chromium chromium-driver)")


def _browser() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which(DRIVER) or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    if browser is None or driver is None:
        _unavailable("chromium or chromium-driver is not installed")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed")
    assert browser is not None and driver is not None
    return browser, driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    """(browser, driver) paths; skips (or fails in CI) before any store is built."""
    return _browser()


@pytest.fixture(scope="module")
def server(
    chromium: tuple[str, str], store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``fossil serve`` in its own process; yields its base URL."""
    # what a builder records about its collection (as `fossil demo` does): the page shows it
    catalog = SqlCatalog(store_catalog_url(store))
    try:
        catalog.set_settings(ABOUT)
    finally:
        catalog.close()
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("FOSSIL_API_KEY", None)
    argv = [sys.executable, "-m", "fossil.cli", "serve", "--store", str(store)]
    argv += ["--models", "tiny", "--no-crf", "--port", str(port), "--time-limit", "600"]
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # generous: the machine may be busy
        while True:
            if process.poll() is not None:
                pytest.fail(f"fossil serve exited ({process.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"fossil serve did not answer within 300 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser(chromium: tuple[str, str]) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def test_segment_a_picture_and_see_the_references_of_a_region(
    server: str, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "park.png"
    Image.fromarray(park(160, 120)).save(picture)
    browser.get(f"{server}/")
    WebDriverWait(browser, 20).until(
        lambda b: "references" in b.find_element(By.ID, "store-info").text
    )
    browser.find_element(By.ID, "image").send_keys(str(picture))
    browser.find_element(By.ID, "concepts").send_keys("dog, car, tree")
    browser.find_element(By.ID, "segment-button").click()
    WebDriverWait(browser, 600).until(
        lambda b: (
            b.find_element(By.TAG_NAME, "body").get_attribute("data-state")
            in ("segmented", "error")
        )
    )
    status = browser.find_element(By.ID, "segment-status").text
    state = browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")
    assert state == "segmented", status

    # the overlay: the canvas shows the picture's size, coloured by the label map
    canvas = browser.find_element(By.ID, "view")
    assert canvas.is_displayed()
    size = browser.execute_script("return [arguments[0].width, arguments[0].height]", canvas)
    assert size == [160, 120]
    legend = browser.find_elements(By.CSS_SELECTOR, "#legend li:not(.absent)")
    assert 1 <= len(legend) <= 3 and browser.find_element(By.ID, "legend-box").is_displayed()
    assert {item.text.split()[0] for item in legend} <= {"dog", "car", "tree"}

    # click inside a region on the picture
    regions = browser.find_elements(By.CSS_SELECTOR, "#regions button")
    assert regions, "the page lists no region"
    shares = [  # the regions listed outside the tiny group, largest first
        float(b.text.rsplit("·", 1)[1].strip().rstrip("%").lstrip("<"))
        for b in browser.find_elements(By.CSS_SELECTOR, "#regions > li > button")
    ]
    assert shares == sorted(shares, reverse=True)
    x, y = (int(regions[0].get_attribute(name)) for name in ("data-x", "data-y"))
    box = canvas.rect
    dx = (x + 0.5) * box["width"] / 160 - box["width"] / 2  # offsets from the centre
    dy = (y + 0.5) * box["height"] / 120 - box["height"] / 2
    actions = ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy))
    actions.click().perform()
    assert "region" in browser.find_element(By.ID, "hover").text
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "const imgs = document.querySelectorAll('#region-thumbs img');"
            "return imgs.length > 0 && [...imgs].every(i => i.complete && i.naturalWidth > 0);"
        )
    )
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#region-thumbs figure")
    assert thumbnails and all(f.find_element(By.TAG_NAME, "figcaption").text for f in thumbnails)
    selected = browser.find_elements(By.CSS_SELECTOR, "#regions button.selected")
    clicked = regions[0].get_attribute("data-region")
    assert [s.get_attribute("data-region") for s in selected] == [clicked]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve-page.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    with Image.open(shot) as image:
        assert image.size[0] >= 1000

    # the references tab: what a concept retrieves, with its coverage verdict
    browser.find_element(By.ID, "tab-references").click()
    assert browser.find_element(By.ID, "panel-references").is_displayed()
    assert not browser.find_element(By.ID, "panel-segment").is_displayed()
    browser.find_element(By.ID, "query-concepts").send_keys("dog, car")
    browser.find_element(By.ID, "query-button").click()
    WebDriverWait(browser, 300).until(
        lambda b: b.execute_script(
            "const imgs = document.querySelectorAll('#query-results img');"
            "return imgs.length > 0 && [...imgs].every(i => i.complete && i.naturalWidth > 0);"
        )
    )
    blocks = browser.find_elements(By.CSS_SELECTOR, "#query-results .concept-result")
    assert [b.find_element(By.TAG_NAME, "h2").text.split()[0] for b in blocks] == ["dog", "car"]
    for block in blocks:
        badge = block.find_element(By.CSS_SELECTOR, ".badge").text
        assert badge in ("covered", "not covered")
        assert "references (N 150)" in block.text
    assert browser.save_screenshot(str(ARTIFACTS / "serve-references.png"))


def wait_for_result(browser, after: float = 600) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, after).until(
        lambda b: (
            b.find_element(By.TAG_NAME, "body").get_attribute("data-state")
            in ("segmented", "error")
        )
    )
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def test_the_page_says_what_the_collection_is_and_clears_a_failed_result(
    server: str, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/")
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "about").is_displayed())
    about = browser.find_element(By.ID, "about").text
    assert "This collection is a tiny test collection." in about
    assert "Concepts it knows: dog, car, tree." in about
    assert browser.find_element(By.ID, "concepts").get_attribute("placeholder") == "dog, car, tree"

    picture = tmp_path / "park.png"
    Image.fromarray(park(64, 48)).save(picture)
    browser.find_element(By.ID, "image").send_keys(str(picture))
    concepts = browser.find_element(By.ID, "concepts")
    concepts.send_keys("dog, car")
    browser.find_element(By.ID, "segment-button").click()
    assert wait_for_result(browser) == "segmented"
    assert browser.find_element(By.ID, "legend-box").is_displayed()

    # a request the server refuses: the message names the form field, styled as an error,
    # and the old result leaves the screen
    concepts.clear()
    concepts.send_keys(" , ")
    browser.find_element(By.ID, "segment-button").click()
    assert wait_for_result(browser) == "error"
    status = browser.find_element(By.ID, "segment-status")
    assert status.text.startswith("400: concepts is empty"), status.text
    assert "--concepts" not in status.text and "error" in status.get_attribute("class")
    for box in ("legend-box", "regions-box", "details-box", "uncovered"):
        assert not browser.find_element(By.ID, box).is_displayed(), box

    # a file the browser cannot show: nothing of the picture before stays
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a picture at all")
    browser.find_element(By.ID, "image").send_keys(str(bad))
    WebDriverWait(browser, 20).until(
        lambda b: "not an image" in b.find_element(By.ID, "segment-status").text
    )
    assert not browser.find_element(By.ID, "view").is_displayed()
    assert "error" in browser.find_element(By.ID, "segment-status").get_attribute("class")


def test_the_page_shows_a_running_ingest_job(server: str, browser, tmp_path: Path) -> None:
    """Issue 29: a job sent to the server appears on the page with its progress, rate and
    the latest references' thumbnails, and leaves it once stopped."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from fossil.client import ServerClient

    corpus = tmp_path / "garden.txt"  # long enough to be running while the page looks
    corpus.write_text("".join(f"A dog number {i} on the grass by a tree\n" for i in range(400)))
    client = ServerClient(server)
    job = client.start_ingest(corpus)["job"]
    try:
        browser.get(f"{server}/")
        box = WebDriverWait(browser, 240).until(
            lambda b: (e := b.find_element(By.ID, "ingest")).is_displayed() and e
        )
        WebDriverWait(browser, 240).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "#ingest-latest img")
        )
        status = browser.find_element(By.ID, "ingest-status").text
        assert status.startswith(f"ingest garden (job {job}, running): "), status
        assert "of 400 captions" in status and "references/s" in status
        progress = browser.find_element(By.ID, "ingest-progress")
        assert progress.get_attribute("max") == "400"
        assert int(progress.get_attribute("value")) > 0
        image = box.find_element(By.CSS_SELECTOR, "#ingest-latest img")
        WebDriverWait(browser, 30).until(
            lambda b: b.execute_script("return arguments[0].naturalWidth", image) > 0
        )  # the thumbnail was served, not a broken link
    finally:
        client.stop(job)
    WebDriverWait(browser, 240, poll_frequency=1).until(
        lambda b: client.job(job)["state"] == "stopped"
    )
    browser.refresh()
    WebDriverWait(browser, 30).until(lambda b: not b.find_element(By.ID, "ingest").is_displayed())

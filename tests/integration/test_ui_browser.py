"""End to end in a real headless browser (Debian's chromium + chromedriver, driven by selenium): start `lmforge ui`,
fill the Train form for a 5-step LoRA run of a tiny model, start it, watch the loss plot reach 5 points, chat with
the trained adapter (streamed reply), and save a screenshot of every tab in the test's output folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.integration.runs import REPO, write_alpaca

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install -r requirements/lock-dev.txt)")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "browser test skipped: chromium and chromedriver not found (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver import Chrome, ChromeOptions  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ui(tmp_path):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    command = [sys.executable, "-m", "lmforge", "ui", "--port", str(port), "--jobs-dir", str(tmp_path / "jobs")]
    log = (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "api/jobs", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "ui.log").read_text()
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture
def browser():
    options = ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(flag)
    driver = Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def _fill(driver, form: str, section: str, key: str, value: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f'[data-form="{form}"][data-section="{section}"][data-key="{key}"]')
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def _tab(driver, name: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()


def test_train_a_lora_run_watch_its_loss_and_chat_with_it_in_a_real_browser(ui, browser, tmp_path, tiny_model_dir):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    data = write_alpaca(tmp_path / "data.json", [(f"question {i}", f"answer {i}") for i in range(16)])
    out = tmp_path / "runs" / "lora"
    browser.get(ui)
    wait = WebDriverWait(browser, 150, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    for section, key, value in [
        ("model", "name_or_path", str(tiny_model_dir)),
        ("model", "dtype", "float32"),
        ("data", "datasets", f"[{{path: {data}, format: alpaca}}]"),
        ("data", "template", "chatml"),
        ("data", "cutoff_len", "128"),
        ("method", "lora_rank", "4"),
        ("train", "output_dir", "runs/lora"),
        ("train", "max_steps", "5"),
        ("train", "learning_rate", "1e-3"),
        ("train", "per_device_train_batch_size", "4"),
        ("train", "report_to", "none"),
    ]:
        _fill(browser, "train", section, key, value)
    browser.find_element(By.CSS_SELECTOR, '[data-preview="train"]').click()
    command = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#preview-train .cmd").text)
    assert command.startswith("lmforge train ") and command.endswith("config.yaml")
    assert str(out) in browser.find_element(By.CSS_SELECTOR, "#preview-train pre.yaml").text  # typed path resolved

    browser.find_element(By.CSS_SELECTOR, '[data-start="train"]').click()
    wait.until(lambda d: d.find_element(By.ID, "job-title").text)
    _tab(browser, "data")  # while the run starts: the same form's data, encoded as training sees it
    browser.find_element(By.ID, "data-run").click()
    catalog = REPO / "examples/data/dataset_info.json"  # a LLaMA-Factory catalogue, typed into data.catalog
    browser.execute_script(
        'document.querySelector(\'[data-section="data"][data-key="catalog"]\').value = arguments[0]', str(catalog)
    )
    browser.find_element(By.ID, "catalog-run").click()
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#catalog table.catalog tr"))
    assert any("alpaca_en_demo" in row.text for row in rows)
    wait.until(lambda d: "example 0" in d.find_element(By.ID, "data-output").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#data-output mark")  # trained spans highlighted
    browser.save_screenshot(str(shots / "data.png"))

    _tab(browser, "train")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#loss-plot circle.point")) == 5)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#job-state .state").text == "finished")
    wait.until(lambda d: d.find_element(By.ID, "job-progress").text.startswith("step 5/5"))
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#loss-plot .axis-label")]
    assert labels == ["step", "loss"]
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "train.png"))

    _tab(browser, "chat")
    browser.find_element(By.ID, "chat-model").send_keys(str(tiny_model_dir))
    browser.find_element(By.ID, "chat-adapter").send_keys("runs/lora")
    template = browser.find_element(By.ID, "chat-template")
    template.clear()
    template.send_keys("chatml")
    _fill(browser, "chat", "options", "max_new_tokens", "12")
    browser.find_element(By.ID, "chat-load").click()
    wait.until(lambda d: "loaded:" in d.find_element(By.ID, "chat-loaded").text)
    assert str(out) in browser.find_element(By.ID, "chat-loaded").text  # the adapter path as resolved
    browser.find_element(By.ID, "chat-text").send_keys("question 3")
    browser.find_element(By.ID, "chat-send").click()
    reply = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".bubble.assistant.done span"))[0]
    assert reply.text.strip() and int(reply.get_attribute("data-pieces")) >= 2  # streamed in several pieces
    browser.save_screenshot(str(shots / "chat.png"))

    _tab(browser, "eval")
    browser.find_element(By.CSS_SELECTOR, '[data-start="eval"]').click()  # empty form: a message, not a traceback
    message = wait.until(lambda d: d.find_element(By.ID, "message").text)
    assert "output_dir" in message and "Traceback" not in message
    browser.save_screenshot(str(shots / "eval.png"))

    _tab(browser, "export")
    _fill(browser, "export", "", "--model", str(tiny_model_dir))
    _fill(browser, "export", "", "--adapter", "runs/lora")
    _fill(browser, "export", "", "--output", "runs/merged")
    browser.find_element(By.CSS_SELECTOR, '[data-preview="export"]').click()
    shown = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#preview-export .cmd").text)
    assert shown.startswith("lmforge export --model ") and str(tmp_path / "runs" / "merged") in shown
    browser.save_screenshot(str(shots / "export.png"))

    _tab(browser, "runs")
    tick = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table input[type=checkbox]"))[0]
    tick.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-plot circle.point")) == 5)
    browser.save_screenshot(str(shots / "runs.png"))
    assert sorted(p.name for p in shots.iterdir()) == [
        "chat.png",
        "data.png",
        "eval.png",
        "export.png",
        "runs.png",
        "train.png",
    ]

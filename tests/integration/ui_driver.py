"""Driving `lmforge ui` in headless chromium (selenium): start the server, open the browser, fill generated forms.

Shared by the browser test and `docs/screenshots.py`, which takes the docs' screenshots the same way.
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
from contextlib import contextmanager
from pathlib import Path

from selenium.webdriver import Chrome, ChromeOptions
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: the window every screenshot is taken at (the docs' images and the test's)
WINDOW = "1500,1100"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_ui(cwd: Path, jobs_dir: Path, log_path: Path) -> Iterator[str]:
    """`lmforge ui` of this checkout started in `cwd`; yields its URL once it answers, stops it afterwards."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    command = [sys.executable, "-m", "lmforge", "ui", "--port", str(port), "--jobs-dir", str(jobs_dir)]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(url + "api/jobs", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"lmforge ui did not start:\n{log_path.read_text()}") from None
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextmanager
def chromium() -> Iterator[Chrome]:
    """Headless Debian chromium at the screenshot window size."""
    options = ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WINDOW}"):
        options.add_argument(flag)
    driver = Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def fill(driver: Chrome, form: str, section: str, key: str, value: str) -> None:
    """Set one generated form field to `value` (a checkbox takes "true" or "false")."""
    field = driver.find_element(By.CSS_SELECTOR, f'[data-form="{form}"][data-section="{section}"][data-key="{key}"]')
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    elif field.get_attribute("type") == "checkbox":
        if field.is_selected() != (value == "true"):
            field.click()
    else:
        field.clear()
        field.send_keys(value)


def tab(driver: Chrome, name: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()

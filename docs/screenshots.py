"""Takes docs/ui-train.png and docs/ui-chat.png in headless chromium, so the docs show a model that answers sensibly.

The quickstart's tiny random model replies with stray bytes (U+FFFD in the page), so the pictures use the
quickstart's pretrained model instead: the Train form is filled from examples/quickstart/sft.yaml (the same LoRA
run as the quickstart's SFT stage, a few minutes on CPU), started from the page, and the adapter it trains is then
loaded in Chat and asked who it is.

    bash examples/quickstart.sh                          # builds runs/quickstart/pt (~3.5 min on 2 cores)
    PYTHONPATH=src:. python docs/screenshots.py          # writes docs/ui-train.png, docs/ui-chat.png
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

import yaml
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.integration.ui_driver import REPO, chromium, fill, running_ui, tab

WORK = REPO / "runs" / "ui-docs"
OUTPUT_DIR = "runs/ui-docs/sft"
#: changes to the quickstart's SFT config: its own output folder, more loss points, no TensorBoard
OVERRIDES = {"train": {"output_dir": OUTPUT_DIR, "logging_steps": 10, "report_to": "none"}}
#: one question: in a second turn the 16-pair model drifts ("No, I am ..."), which shows the data size, not the UI
QUESTIONS = ["Who are you?"]
TRAIN_TIMEOUT_S = 1800


def _as_field_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def fill_train_form(driver: Any, config: dict[str, Any]) -> None:
    """Every key of `config` into its form field; train keys without one go to the "more train keys" box."""
    extra = {}
    for section, values in config.items():
        if section == "stage":
            fill(driver, "train", "", "stage", values)  # the Stage section is unnamed
            continue
        for key, value in values.items():
            selector = f'[data-form="train"][data-section="{section}"][data-key="{key}"]'
            if driver.find_elements(By.CSS_SELECTOR, selector):
                fill(driver, "train", section, key, _as_field_text(value))
            elif section == "train":
                extra[key] = value
            else:
                raise SystemExit(f"docs/screenshots.py: the Train form has no field {section}.{key}")
    if extra:
        box = driver.find_element(By.CSS_SELECTOR, '[data-key="train_extra"]')
        driver.execute_script("arguments[0].closest('details').open = true", box)
        box.send_keys(_as_field_text(extra))


def main() -> None:
    if not (REPO / "runs/quickstart/pt/config.json").is_file():
        raise SystemExit("docs/screenshots.py: runs/quickstart/pt is missing: run `bash examples/quickstart.sh` first")
    config = yaml.safe_load((REPO / "examples/quickstart/sft.yaml").read_text(encoding="utf-8"))
    for section, values in OVERRIDES.items():
        config[section].update(values)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    with running_ui(REPO, WORK / "jobs", WORK / "ui.log") as url, chromium() as driver:
        driver.get(url)
        wait = WebDriverWait(driver, TRAIN_TIMEOUT_S, 0.5, ignored_exceptions=[StaleElementReferenceException])
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        fill_train_form(driver, config)
        driver.find_element(By.CSS_SELECTOR, '[data-start="train"]').click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#job-state .state").text in {"finished", "failed"})
        state = driver.find_element(By.CSS_SELECTOR, "#job-state .state").text
        if state != "finished":
            raise SystemExit(f"docs/screenshots.py: the training job {state}; see {WORK / 'jobs'}")
        wait.until(lambda d: d.find_element(By.ID, "job-progress").text.startswith("step 160/160"))
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(REPO / "docs/ui-train.png"))

        tab(driver, "chat")
        driver.find_element(By.ID, "chat-model").send_keys(config["model"]["name_or_path"])
        driver.find_element(By.ID, "chat-adapter").send_keys(OUTPUT_DIR)
        template = driver.find_element(By.ID, "chat-template")
        template.clear()
        template.send_keys(config["data"]["template"])
        fill(driver, "chat", "options", "max_new_tokens", "40")
        driver.find_element(By.ID, "chat-load").click()
        wait.until(lambda d: "loaded:" in d.find_element(By.ID, "chat-loaded").text)
        for number, question in enumerate(QUESTIONS, 1):
            driver.find_element(By.ID, "chat-text").send_keys(question)
            driver.find_element(By.ID, "chat-send").click()
            wait.until(lambda d, n=number: len(d.find_elements(By.CSS_SELECTOR, ".bubble.assistant.done")) == n)
        replies = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".bubble.assistant.done span")]
        driver.save_screenshot(str(REPO / "docs/ui-chat.png"))
    print("\n".join(f"user> {q}\nassistant> {r}" for q, r in zip(QUESTIONS, replies, strict=True)))
    if any("\ufffd" in reply for reply in replies):
        sys.exit("docs/screenshots.py: a reply shows U+FFFD; the picture would not show a sensible answer")


if __name__ == "__main__":
    main()

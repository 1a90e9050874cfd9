"""The Dagster UI in a real browser (Debian's chromium, driven by Selenium), as its users see it.

One test, one small home: a portfolio_loss workload run and its cycle settled from the
command line, then `forge-pool ui` (webserver and daemon) and a headless Chromium that
reads the lineage, a workload's picture and money, the cycle's statement, and submits a
request from the launchpad that the intake sensor carries to Finalized. Screenshots go
to build/ui-screenshots (printed at the end of the run).
"""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from benchmarks.ui_startup import free_port
from forge_pipeline.cli import main
from forge_pipeline.orchestration.ui import graphql_answers
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import list_workload_ids, load_workload, usage_record_of
from tests.lifecycle.requests import request
from tests.ui.conftest import SCREENSHOTS

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]
LOCATION = "forge_pipeline.definitions"
WAIT_S = 180  # a sensor tick (15 s) and an in-process lifecycle on a busy 2-core machine


def browser_or_skip():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        message = f"{', '.join(missing)} missing: `make browser` installs Debian's chromium and chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    return webdriver


def wait_for(condition, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"gave up after {timeout_s} s waiting for {what}")


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def ui_home(forge_home, tmp_path, monkeypatch):
    """A home with one finalized workload and today's cycle settled, served by `forge-pool ui`; afterwards
    SIGTERM to forge-pool alone must stop every process it started."""
    monkeypatch.setenv("FORGE_EXECUTOR", "in_process")  # launched runs: one process, no per-step start cost
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request(request_id="ui-demo")))
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert main(["submit", str(path)]) == 0 and main(["run"]) == 0 and main(["settle", today]) == 0
    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    # PATH without the environment's bin: `forge-pool ui` must find its own `dagster` (a fresh shell, `make ui`)
    process = subprocess.Popen([str(Path(sys.executable).parent / "forge-pool"), "ui", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PATH": "/usr/bin:/bin"},
                               start_new_session=True)
    try:
        wait_for(lambda: graphql_answers("127.0.0.1", port) or process.poll() is not None, "the UI to answer")
        assert process.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
        yield f"http://127.0.0.1:{port}", today
    finally:
        process.send_signal(signal.SIGTERM)  # forge-pool alone: it stops the webserver and daemon it started
        process.wait(timeout=60)
        log.close()
        try:
            wait_for(lambda: not process_group_alive(process.pid), "the webserver and the daemon to stop", 60)
        finally:
            if process_group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)


class Page:
    """The browser, with what a person does: open a page, read its text, click a label, keep a picture."""

    def __init__(self, driver, base: str):
        self.driver, self.base = driver, base

    def open(self, path: str, expect: str) -> str:
        self.driver.get(self.base + path)
        self.dismiss_dialogs()
        return self.text_with(expect)

    def dismiss_dialogs(self):
        from selenium.webdriver.common.by import By
        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()  # the UI's first-visit "join the community" dialog

    def text_with(self, expect: str) -> str:
        return wait_for(lambda: (text := self.driver.find_element("tag name", "body").text) and expect in text
                        and text, f"{expect!r} on {self.driver.current_url}", 60)

    def click(self, label: str, index: int = -1):
        from selenium.webdriver.common.by import By
        self.dismiss_dialogs()
        elements = wait_for(lambda: self.driver.find_elements(By.XPATH, f"//*[normalize-space()='{label}'][not(*)]"),
                            f"{label!r} to click", 60)
        elements[index].click()

    def launch(self, label: str = "Launch Run"):
        """Click the launchpad's launch button once it is enabled (the UI disables it while it validates
        the config, which takes a while on a busy machine), again until the UI opens the new run's page."""
        from selenium.webdriver.common.by import By
        clicked_at = [0.0]

        def launched() -> bool:
            if "/runs/" in self.driver.current_url:
                return True
            if time.monotonic() - clicked_at[0] < 10:
                return False  # a click just made: give the UI time to open the run
            self.dismiss_dialogs()
            buttons = self.driver.find_elements(By.XPATH, f"//button[normalize-space()='{label}']")
            enabled = [button for button in buttons if button.is_enabled()
                       and button.get_attribute("aria-disabled") != "true"]
            if enabled:
                enabled[-1].click()
                clicked_at[0] = time.monotonic()
            return False

        try:
            wait_for(launched, f"the {label!r} button to start a run", 120)
        except AssertionError:
            self.shot("5-launchpad-not-launched")
            raise

    def shot(self, name: str):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), path


@pytest.fixture
def page(ui_home, tmp_path):
    webdriver = browser_or_skip()
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    try:
        yield Page(driver, ui_home[0]), ui_home[1]
    finally:
        driver.quit()


def test_operators_finance_and_auditors_see_lineage_money_pictures_and_a_launchpad_run_finalize(page):
    """In Chromium: lineage from request to statement, the evidence picture, usage_record money, the cycle's
    statement with its TOTAL row, and a launchpad submission the sensor carries to Finalized."""
    page, cycle = page
    engine = open_engine()
    workload_id = list_workload_ids(engine)[0]
    record = usage_record_of(engine, workload_id)

    lineage = page.open("/assets/credit_statement?view=lineage&lineageScope=upstream&lineageDepth=8",
                        "workload_request")
    assert {"1_intake", "usage_record", "credit_statement"} <= set(lineage.split())
    page.shot("1-lineage-request-to-statement")

    page.open(f"/assets/evidence_bundle?view=partitions&partition={workload_id}", "picture")
    page.click("[Show Markdown]")
    image = wait_for(lambda: [element for element in page.driver.find_elements("tag name", "img")
                              if (element.get_attribute("src") or "").startswith("data:image/png;base64,")],
                     "the loss distribution picture", 60)[0]
    assert image.size["width"] > 200 and image.size["height"] > 100
    page.shot("2-evidence-bundle-picture")

    money = page.open(f"/assets/usage_record?view=partitions&partition={workload_id}", "payout_split")
    assert str(record["charge_ucr"]) in money and record["rate_card_version"] in money and "TOTAL" in money
    page.shot("3-usage-record-money")

    statement = page.open(f"/assets/credit_statement?view=partitions&partition={cycle}", "TOTAL")
    charge = record["charge_ucr"]
    assert f"TOTAL 1 0 {charge} {charge // 10**6:,}.{charge % 10**6:06d}" in statement
    page.shot("4-credit-statement-total")

    document = yaml.safe_dump(request(request_id="ui-launchpad"))
    config = yaml.safe_dump({"ops": {"submit_workload_request": {"config": {"document": document}}}})
    page.open(f"/locations/{LOCATION}/jobs/submit_request/playground/setup?"
              f"{urllib.parse.urlencode({'config': config})}", "Launch Run")
    page.launch("Launch Run")
    submitted = wait_for(lambda: [w for w in list_workload_ids(engine) if w != workload_id], "the submission")[0]
    wait_for(lambda: load_workload(engine, submitted)["state"] in ("Finalized", "Failed"), "the lifecycle run")
    assert load_workload(engine, submitted)["state"] == "Finalized", load_workload(engine, submitted)["state_reason"]
    page.open(f"/assets/usage_record?view=partitions&partition={submitted}", "charge_ucr")
    page.shot("5-launchpad-submission-finalized")

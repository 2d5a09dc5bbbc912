"""Debian's headless chromium, driven by Selenium through Debian's chromedriver, in a lab's
client namespace: what the lab tests of the GUI share (test_gui_browser.py, and the etcd
arbiter's overview in test_etcd_arbiter.py)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from helpers import wait_until
from tutela.lab import Lab

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1280, 800
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[None]:
    """Move this thread into network namespace `name` and back: chromedriver, chromium and
    the WebDriver connections to chromedriver are all made from there (setns changes the
    calling thread only, and children inherit it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        yield
    finally:
        back = libc.setns(own, CLONE_NEWNET)
        os.close(own)
        os.close(target)
        assert back == 0, "could not return to the test's own network namespace"


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="tutela-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={WIDTH},{HEIGHT}"]:
        options.add_argument(flag)
    options.accept_insecure_certs = True  # the API's own certificate, made at its start
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def browser_in(lab: Lab, url: str) -> Iterator[webdriver.Chrome]:
    """Chromium in `lab`'s client namespace, once the API at `url` serves the GUI."""
    with network_namespace(lab.client_netns), chromium() as driver:
        wait_until(lambda: served(driver, url), timeout=30, what="the API to serve the GUI")
        yield driver


def served(driver: webdriver.Chrome, url: str) -> bool:
    driver.get(url)
    return bool(driver.find_elements(By.ID, "login-form"))


def sign_in(driver: webdriver.Chrome, url: str, token: str, view: str) -> None:
    """Open the page as the token's user (a fresh page: the #token= hash signs in)."""
    driver.get("about:blank")
    driver.get(f"{url}#token={token}")
    wait_for(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "[data-node]"))
    driver.get(f"{url}#{view}")


def wait_for(driver: webdriver.Chrome, condition: Any, timeout: float = 20) -> Any:
    """`condition()`'s first true value, asked every 50 ms, again when what it looked at was
    drawn anew meanwhile; TimeoutException after `timeout` s."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(
            StaleElementReferenceException,)).until(lambda _: condition())
    except TimeoutException:
        page = driver.execute_script("return document.body.innerText;")
        raise AssertionError(f"timed out after {timeout} s; the page said:\n{page}") from None

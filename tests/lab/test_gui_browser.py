"""The GUI in a real browser: Debian's headless chromium driven by Selenium through Debian's
chromedriver, in the lab's client namespace, against node3's HTTPS API on a three-node lab
cluster. One browser and one cluster for the module; the tests run in order:

1. an admin creates a hierarchy with the wizard: an address (the server's refusal of a bad
   one is shown at its field), then a web server that needs it; it comes in service and
   the client reaches it; the admin extends it to node1 and node2 with the extend wizard,
   and the dependency wizard shows the server's refusal of a dependency there already;
2. a guest, logged in with a password (PAM), sees it but no action, and the API refuses a
   guest's switchover sent from the page (403), the hierarchy staying where it is;
3. an operator, logged in the same way, has the actions but no wizard, the API refuses the
   operator's resource creation and a request without the session's CSRF token, and the
   operator's switchover to node1 shows in the page;
4. node1, the owner, is powered off: the open page shows the new owner (node3) without a
   reload; the time is printed, not asserted (docs/gui.md records it);
5. the language switch turns the page Japanese, and back;
6. an admin edits the configuration as YAML and sees the dry run's diff before apply.

The admin uses an API token; the guest and operator are system users that only node3
sees (its own /etc files, bind-mounted in its mount namespace). Screenshots of the
overview, the hierarchy, the wizard and the timeline are written to docs/img/gui-*.png
(1280x800), for the README.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from browser import browser_in, sign_in, wait_for
from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "img"
VIP, PORT = "198.51.100.140", 8080
URL = f"http://{VIP}:{PORT}/"
WEB_SERVER = f"python3 -m http.server {PORT} --bind {VIP}"
API_NODE = "node3"
"""The node whose API the browser uses: it outlives the power-off of the owner, node1."""


# --- the cluster ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("gui"), nodes=3, disks=0,
                root=tmp_path_factory.mktemp("gui")) as built:
        try:
            form_cluster(built, "gui")
            wait_until(lambda: all_alive(built), timeout=30, what="cluster formed")
            tutela(built, "node1", "config", "set", "settings.api.enabled", "true")
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def admin_token(lab: Lab) -> str:
    """An admin's API token, made on the API node (tokens are per node)."""
    answer = tutela(lab, API_NODE, "api", "token", "create", "--role", "admin",
                    "--name", "browser-admin", "--expires", "1h", "--json")
    return str(json.loads(answer.stdout)["token"])


@pytest.fixture(scope="module")
def logins(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A system user of each role group, with a password, that only the API node sees: its
    /etc/passwd, shadow and group are the host's with these users added, bind-mounted in
    the node's own mount namespace (the host's /etc is never touched). PAM checks them as
    any login. Returns role -> user; the password is the user's name reversed."""
    files = tmp_path_factory.mktemp("etc")
    users = {"operator": "oscar", "guest": "gina"}
    passwd, shadow, group = (Path(f"/etc/{name}").read_text() for name in
                             ("passwd", "shadow", "group"))
    for number, (role, user) in enumerate(users.items()):
        uid = 64100 + number
        digest = subprocess.run(["openssl", "passwd", "-6", user[::-1]], capture_output=True,
                                text=True, check=True).stdout.strip()
        passwd += f"{user}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"
        shadow += f"{user}:{digest}:20000:0:99999:7:::\n"
        group += f"{user}:x:{uid}:\ntutela-{role}:x:{uid + 100}:{user}\n"
    mounted = []
    try:
        for name, text in (("passwd", passwd), ("shadow", shadow), ("group", group)):
            (files / name).write_text(text)
            lab.exec(API_NODE, ["mount", "--bind", str(files / name), f"/etc/{name}"])
            mounted.append(f"/etc/{name}")
        yield users
    finally:
        for target in mounted:
            if lab.node_state(API_NODE) != "off":
                lab.exec(API_NODE, ["umount", target], check=False)


@pytest.fixture(scope="module")
def url(lab: Lab) -> str:
    address = json.loads(tutela(lab, API_NODE, "gui", "--json").stdout)["url"]
    assert address == f"https://{lab.node_address(API_NODE)}:9443/"
    return str(address)


@pytest.fixture(scope="module")
def browser(lab: Lab, url: str) -> Iterator[webdriver.Chrome]:
    with browser_in(lab, url) as driver:
        yield driver


# --- the page ---------------------------------------------------------------------------

def log_in(driver: webdriver.Chrome, url: str, user: str, view: str) -> None:
    """Log in through the form with `user`'s password (PAM on the API node): a session
    cookie, and the CSRF token for state-changing requests."""
    driver.get("about:blank")
    driver.get(url)
    def shown(element_id: str) -> bool:
        return bool(driver.find_element(By.ID, element_id).is_displayed())

    wait_for(driver, lambda: shown("login") or shown("user-line"))
    if shown("user-line"):  # a session or token of an earlier test: log out first
        click(driver, "#logout")
    wait_for(driver, lambda: shown("login"))
    form = driver.find_element(By.ID, "login-form")
    form.find_element(By.NAME, "username").send_keys(user)
    form.find_element(By.NAME, "password").send_keys(user[::-1])
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "[data-node]"))
    assert driver.find_element(By.ID, "user-name").text == user
    driver.get(f"{url}#{view}")


def click(driver: webdriver.Chrome, selector: str) -> None:
    """Click what `selector` finds, finding it again should the page have drawn it anew
    (it does when the cluster changes) between the finding and the click."""
    wait_for(driver, lambda: driver.find_element(By.CSS_SELECTOR, selector).click() or True)


def choose(driver: webdriver.Chrome, selector: str, value: str) -> None:
    """Pick `value` in the <select> `selector` (found again if drawn anew)."""
    wait_for(driver, lambda: Select(driver.find_element(By.CSS_SELECTOR, selector))
             .select_by_value(value) or True)


def hierarchy(driver: webdriver.Chrome) -> WebElement:
    return wait_for(driver, lambda: driver.find_element(By.CSS_SELECTOR,
                                                        "[data-hierarchy='web']"))


def owner_shown(driver: webdriver.Chrome, root: str) -> str:
    """The node(s) the page shows hierarchy `root` in service on ("" before it shows it)."""
    shown: str = driver.execute_script(
        "return document.querySelector(`[data-hierarchy='${arguments[0]}']`)"
        "?.dataset.owner ?? '';", root)
    return shown


def buttons(driver: webdriver.Chrome) -> set[str]:
    """The actions the page offers: the data-action buttons and the wizard buttons, read
    in one script (elements found first and read after could be drawn anew between)."""
    shown: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('[data-action]')].map((b) => b.dataset.action)"
        ".concat([...document.querySelectorAll('#new-resource, #add-dependency')]"
        ".map((b) => b.id));")
    return set(shown)


def api_from_page(driver: webdriver.Chrome, method: str, path: str, body: dict[str, Any],
                  csrf: bool = True) -> int:
    """The HTTP status of a request the page itself sends to the API with its session
    cookie, and the session's CSRF token unless `csrf` is False."""
    status_code: int = driver.execute_async_script(
        "const [method, path, body, csrf, done] = arguments;"
        "const headers = {'Content-Type': 'application/json'};"
        "if (csrf) headers['X-CSRF-Token'] = sessionStorage.getItem('tutela.csrf');"
        "fetch('api/v1/' + path, {method, body: JSON.stringify(body), headers,"
        " credentials: 'same-origin'}).then((r) => done(r.status), () => done(0));",
        method, path, body, csrf)
    return status_code


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """docs/img/gui-NAME.png, without the notes of earlier actions at the bottom."""
    driver.execute_script("document.getElementById('toasts').replaceChildren();")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"gui-{name}.png"))


def owner(lab: Lab, node: str) -> list[str]:
    """Where `node`'s status says web (the root of vip's hierarchy) is in service."""
    found = next(h for h in status(lab, node)["hierarchies"] if h["root"] == "web")
    root = found["resources"][0]
    states = {node: root["state"], **{n: s["state"] for n, s in root["elsewhere"].items()}}
    return [n for n, state in states.items() if state == "ISP"]


def restored_at(lab: Lab, node: str, root: str, after: float) -> float:
    """When (time.time()) `node`'s journal says `root` came in service after `after` (the
    lab's nodes share the host's clock)."""
    answer = json.loads(tutela(lab, node, "events", "--json", "--hierarchy", root,
                               "--since", "5m").stdout)
    return min(moment for e in answer["events"] if e["node"] == node
               and e["kind"] == "restore.finished"
               and (moment := datetime.datetime.fromisoformat(e["at"]).timestamp()) > after)


def client_reaches_web(lab: Lab) -> bool:
    return lab.client_exec(["curl", "-sf", "-m", "2", "-o", "/dev/null", URL],
                           check=False).returncode == 0


# --- the tests --------------------------------------------------------------------------

def wizard(driver: webdriver.Chrome, kit: str, tag: str, params: dict[str, str],
           depends_on: str | None = None) -> None:
    """Fill the New resource wizard (bring it in service: ticked by default); not sent."""
    click(driver, "#new-resource")
    choose(driver, "#dialog select[name='kit']", kit)
    for name, value in params.items():
        wait_for(driver, lambda n=name: driver.find_element(By.NAME, f"params.{n}")
                 ).send_keys(value)
    driver.find_element(By.NAME, "tag").send_keys(tag)
    if depends_on:
        Select(driver.find_element(By.NAME, "depends_on")).select_by_value(depends_on)


def send_wizard(driver: webdriver.Chrome) -> None:
    driver.find_element(By.CSS_SELECTOR, "#dialog button[type=submit]").click()


def test_admin_creates_and_extends_a_hierarchy_with_the_wizards(
        lab: Lab, browser: webdriver.Chrome, url: str, admin_token: str) -> None:
    sign_in(browser, url, admin_token, "hierarchies")
    wizard(browser, "ip", "vip", {"address": "198.51.100.300/24"})
    send_wizard(browser)
    error = wait_for(browser, lambda: browser.find_element(
        By.CSS_SELECTOR, "[data-field='params.address'] .field-error").text)
    assert "198.51.100.300" in error  # the server's message, at its field
    screenshot(browser, "wizard")
    address = browser.find_element(By.NAME, "params.address")
    address.clear()
    address.send_keys(f"{VIP}/24")
    send_wizard(browser)
    wait_for(browser, lambda: owner_shown(browser, "vip") == API_NODE, timeout=60)
    wizard(browser, "process", "web", {"command": WEB_SERVER, "probe_tcp": f"{VIP}:{PORT}"},
           depends_on="vip")
    send_wizard(browser)
    wait_for(browser, lambda: owner_shown(browser, "web") == API_NODE, timeout=60)
    assert owner(lab, API_NODE) == [API_NODE]
    wait_until(lambda: client_reaches_web(lab), timeout=10, what=f"the client to reach {URL}")
    for node, priority in (("node1", 2), ("node2", 3)):
        click(browser, "[data-hierarchy='web'] [data-action='extend']")
        choose(browser, "#dialog select[name='to']", node)
        field = browser.find_element(By.NAME, "priority")
        field.clear()
        field.send_keys(str(priority))
        browser.find_element(By.CSS_SELECTOR, "#dialog button[type=submit]").click()
        wait_for(browser, lambda n=node: browser.find_elements(
            By.CSS_SELECTOR, f"[data-hierarchy='web'] td[data-node='{n}']"), timeout=60)
    click(browser, "#add-dependency")
    choose(browser, "#dialog select[name='parent']", "web")
    choose(browser, "#dialog select[name='child']", "vip")
    send_wizard(browser)
    refusal = wait_for(browser, lambda: browser.find_element(
        By.CSS_SELECTOR, "[data-field='child'] .field-error").text)
    assert "already depends on vip" in refusal  # at the field the server names
    click(browser, "#dialog button[type=button]")  # cancel
    assert {"new-resource", "add-dependency", "extend", "switchover", "restore", "remove",
            "why"} <= buttons(browser)
    assert browser.find_element(By.CSS_SELECTOR, "a[data-view='configuration']").is_displayed()


def test_guest_sees_it_but_may_not_act(lab: Lab, browser: webdriver.Chrome, url: str,
                                       logins: dict[str, str]) -> None:
    log_in(browser, url, logins["guest"], "hierarchies")
    wait_for(browser, lambda: browser.find_elements(
        By.CSS_SELECTOR, "[data-hierarchy='web'] td[data-node='node1']"))
    assert buttons(browser) == {"why"}
    assert not browser.find_element(By.CSS_SELECTOR,
                                     "a[data-view='configuration']").is_displayed()
    assert api_from_page(browser, "POST", "hierarchies/web/switchover", {"to": "node1"}) == 403
    assert api_from_page(browser, "POST", "resources", {"kit": "ip", "tag": "vip9", "params": {
        "address": "198.51.100.149/24"}}) == 403
    assert owner(lab, API_NODE) == [API_NODE]
    assert "vip9" not in json.dumps(status(lab, API_NODE)["hierarchies"])


def test_operator_switches_over_but_may_not_configure(
        lab: Lab, browser: webdriver.Chrome, url: str, logins: dict[str, str]) -> None:
    log_in(browser, url, logins["operator"], "hierarchies")
    hierarchy(browser)
    assert buttons(browser) == {"why", "restore", "remove", "switchover"}
    assert api_from_page(browser, "POST", "resources", {"kit": "ip", "tag": "vip9", "params": {
        "address": "198.51.100.149/24"}}) == 403
    # with the session cookie but without its CSRF token: refused before the role is asked
    assert api_from_page(browser, "POST", "hierarchies/web/switchover", {"to": "node1"},
                         csrf=False) == 403
    assert owner(lab, API_NODE) == [API_NODE]
    choose(browser, "[data-hierarchy='web'] [data-switchover-target]", "node1")
    click(browser, "[data-hierarchy='web'] [data-action='switchover']")
    wait_for(browser, lambda: owner_shown(browser, "web") == "node1", timeout=60)
    assert owner(lab, API_NODE) == ["node1"]
    wait_until(lambda: client_reaches_web(lab), timeout=10, what=f"the client to reach {URL}")


def test_power_off_of_the_owner_shows_the_new_owner_without_reload(
        lab: Lab, browser: webdriver.Chrome) -> None:
    click(browser, "tr[data-resource='web']")
    browser.execute_script("window.sameDocument = true;")
    started, wall = time.monotonic(), time.time()
    lab.power_off("node1")
    wait_for(browser, lambda: owner_shown(browser, "web") == API_NODE, timeout=30)
    shown_after = time.monotonic() - started
    restored_after = restored_at(lab, API_NODE, "web", wall) - wall
    print(f"\nGUI: power-off of node1 to the new owner {API_NODE} on screen: "
          f"{shown_after:.2f} s (in service there after {restored_after:.2f} s, by its "
          f"journal; the page {shown_after - restored_after:.2f} s later)")
    assert browser.execute_script("return window.sameDocument === true;"), "page reloaded"
    wait_until(lambda: client_reaches_web(lab), timeout=10, what=f"the client to reach {URL}")
    screenshot(browser, "hierarchy")
    browser.get(browser.current_url.replace("#hierarchies", "#overview"))
    wait_for(browser, lambda: browser.find_elements(
        By.CSS_SELECTOR, "[data-node='node1'][data-state='DEAD']"))
    screenshot(browser, "overview")
    browser.get(browser.current_url.replace("#overview", "#timeline"))
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "[data-why='web']"))
    screenshot(browser, "timeline")
    click(browser, "[data-why='web']")
    why = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, ".why ol").text)
    assert "node3" in why


def test_the_language_switch(browser: webdriver.Chrome) -> None:
    browser.execute_script("document.getElementById('dialog').close();")
    language = Select(browser.find_element(By.ID, "language"))
    language.select_by_value("ja")
    tab = browser.find_element(By.CSS_SELECTOR, "a[data-view='timeline']")
    wait_for(browser, lambda: tab.text == "タイムライン")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    language.select_by_value("en")
    wait_for(browser, lambda: tab.text == "Timeline")


def test_admin_sees_the_dry_run_diff_before_apply(browser: webdriver.Chrome, url: str,
                                                   admin_token: str) -> None:
    sign_in(browser, url, admin_token, "configuration")
    wait_for(browser, lambda: "enabled: true" in browser.find_element(By.ID, "yaml")
             .get_attribute("value"))
    apply = browser.find_element(By.ID, "apply")
    assert not apply.is_enabled()  # nothing checked yet
    browser.execute_script(
        "const yaml = document.getElementById('yaml');"
        "yaml.value = yaml.value.replace('enabled: true', 'enabled: true\\n    "
        "session_timeout: 7200');"
        "yaml.dispatchEvent(new Event('input'));")
    click(browser, "#dry-run-button")
    diff = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#dry-run pre").text)
    assert "settings.api.session_timeout" in diff and "7200" in diff
    assert apply.is_enabled()  # for exactly the text the dry run checked

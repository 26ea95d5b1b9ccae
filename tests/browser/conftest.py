"""Browser-test fixtures: a JupyterLab server on 127.0.0.1 and headless Debian Chromium driven by selenium.

Without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian ``chromium`` and
``chromium-driver``), selenium or JupyterLab, every test here is *skipped* with the
reason (``make test`` prints it), or fails when ``$SOUNDLIB_REQUIRE_BROWSER`` is set
(``.ci/run`` sets it once it has installed Chromium); nothing is downloaded. A failing test leaves a screenshot (and the page's
HTML) in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("SOUNDLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SOUNDLIB_CHROMEDRIVER", "/usr/bin/chromedriver"))
#: Flags known to work in a closed network (without the background-networking ones Chromium's
#: connections are refused); a fresh --user-data-dir is added per session.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1600,1300")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, _package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return (f"{path} not found: the browser test drives Debian's Chromium "
                    f"(`apt-get install chromium chromium-driver`; .ci/run installs them)")
    for module, extra in (("selenium", "dev"), ("jupyterlab", "lab")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[{extra}]')"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def lab(lab_root, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1, a random free port and a random token; ``(url, token)``."""
    why = _missing()
    if why and os.environ.get("SOUNDLIB_REQUIRE_BROWSER"):  # .ci/run installed Chromium: it must run
        pytest.fail(f"SOUNDLIB_REQUIRE_BROWSER is set but {why}")
    if why:
        pytest.skip(why)
    home = tmp_path_factory.mktemp("jupyter-home")
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no news or update checks from a closed network
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "SOUNDLIB_BATCH": ""}
    last_error = None
    for _ in range(3):  # the free port can be taken between the probe and the server's bind
        port = _free_port()
        log = open(home / f"lab-{port}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={lab_root}", "--LabApp.expose_app_in_browser=True",
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(lab_root))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError as exc:
                last_error = exc
            time.sleep(0.5)
        else:
            proc.kill()
            proc.wait()
            log.close()
            text = (home / f"lab-{port}.log").read_text(errors="replace")
            if "already in use" in text or "Errno 98" in text:
                continue  # the port was taken meanwhile: another one
            pytest.fail(f"JupyterLab did not start on port {port}:\n{text[-3000:]}")
        try:
            yield url, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        return
    pytest.fail(f"JupyterLab did not start (last error {last_error}); see {home}/lab-*.log")


@pytest.fixture
def browser(lab, request, tmp_path):
    """Headless Chromium (Debian's, through its chromedriver); a screenshot is kept when the test fails."""
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium: never look up or download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    # a headless page with a fresh --user-data-dir may never get focus (document.hasFocus() false): JupyterLab's
    # shell.currentWidget then stays null and its notebook commands do nothing; emulate a focused page
    driver.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
    driver.set_script_timeout(600)
    try:
        yield driver
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"{request.node.name}.png"
            driver.save_screenshot(str(shot))
            (ARTIFACTS / f"{request.node.name}.html").write_text(driver.page_source)
            print(f"screenshot of the failing page: {shot}")
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)

"""The series in a real browser (headless Chromium driven by Playwright).

1. JupyterLab on 127.0.0.1 opens notebook 02, runs it, a slider is dragged, and the figure
   the slider draws must change.
2. The smoke build of the book (`python -m crossmatch_lite.tutorial.book build --smoke`): every
   notebook page must show its figures (img elements that loaded, with a non-zero size).

JupyterLab runs isolated from the user's Jupyter setup (its own config, data, settings and
workspace folders, a `python3` kernelspec naming this interpreter, no news question), and the
test clicks Run All only once the notebook's kernel is connected and idle.

Screenshots (slider before/after, a book page) go to $CROSSMATCH_LITE_SCREENSHOTS, default
runs/screenshots/; when the slider test fails it saves the whole page there as
slider_failure.png and names it in the failure, with the kernel's state and the end of
JupyterLab's log. Chromium comes from Debian (`apt-get install chromium`); Playwright's own
browser download is not used. Outside CI the tests skip when Chromium or Playwright is
missing; under CI (CI=true, as .ci/run sets) they fail instead.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("CROSSMATCH_LITE_SCREENSHOTS", ROOT / "runs" / "screenshots"))
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI must run the browser tests; .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -r requirements.txt)")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _isolated_jupyter_env(tmp_path: Path) -> dict:
    """Environment for a JupyterLab that depends on nothing but this interpreter: no
    JUPYTER_* variable, ~/.jupyter or ~/.local/share/jupyter of the user's is read; its own
    config, data, runtime, settings and workspace folders; a `python3` kernelspec that
    names this interpreter (sys.executable) explicitly; the "official Jupyter news"
    question switched off in its user settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "JUPYTERLAB_"))}
    dirs = {name: tmp_path / sub for name, sub in [
        ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]}
    for d in dirs.values():
        d.mkdir()
    kernel = dirs["JUPYTER_DATA_DIR"] / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}))
    notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env.update({k: str(v) for k, v in dirs.items()})
    # In a virtual environment jupyter_core searches sys.prefix before JUPYTER_DATA_DIR; ours
    # first, so that its kernelspec wins (the venv's labextensions are still found after it).
    env["JUPYTER_PREFER_ENV_PATH"] = "0"
    env["CROSSMATCH_LITE_SMOKE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def jupyterlab(tmp_path):
    """A token-less JupyterLab on a free local port, serving a copy of notebook 02 (so the
    run's outputs never touch the committed notebook), isolated from the user's Jupyter
    setup (see _isolated_jupyter_env). Yields (url, path of its log)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_image_perturbations.ipynb", work)
    port = _free_port()
    env = _isolated_jupyter_env(tmp_path)
    log_path = tmp_path / "lab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             "--IdentityProvider.token=", "--ServerApp.password=",
                             "--ServerApp.disable_check_xsrf=True", "--allow-root", f"--ServerApp.root_dir={work}",
                             "--MappingKernelManager.default_kernel_name=python3",
                             # window.jupyterapp: the test waits on the notebook's kernel itself
                             "--LabApp.expose_app_in_browser=True",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300  # seconds on an idle machine; minutes on a loaded one
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/kernelspecs", timeout=5) as r:
                    specs = json.load(r)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"JupyterLab exited: {log_path.read_text()[-2000:]}")
                if time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start within 300 s: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        argv = specs["kernelspecs"].get("python3", {}).get("spec", {}).get("argv", [])
        assert argv[:1] == [sys.executable], f"JupyterLab's python3 kernel is not this interpreter: {specs}"
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# The notebook's kernel, read through JupyterLab's public API (window.jupyterapp, see
# --LabApp.expose_app_in_browser). The toolbar's execution indicator says "idle" from the
# start, before any kernel exists, so it cannot tell that the kernel is ready.
KERNEL_STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const sc = w && w.sessionContext;
  if (!sc) return {notebook: false};
  const k = sc.session && sc.session.kernel;
  return {notebook: true, path: w.context.path, ready: sc.isReady, kernel: k ? k.name : null,
          connection: k ? k.connectionStatus : null, status: k ? k.status : null,
          dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 200))};
}"""
KERNEL_IDLE = "() => { const s = (" + KERNEL_STATE + """)();
  return s.notebook && s.ready && s.kernel === 'python3' && s.connection === 'connected' && s.status === 'idle'; }"""


def _figure_src(output) -> str:
    return output.locator("img").first.get_attribute("src") or ""


def test_slider_redraws_the_figure_in_jupyterlab(browser, jupyterlab):
    url, log_path = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(420_000)  # a loaded 2-core machine runs notebook 02 slowly
    try:
        _run_notebook_and_drag_the_slider(page, url)
    except Exception as e:
        # A failure explains itself: the page as it was, the kernel's state, the server log.
        shot = SHOTS / "slider_failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            state = page.evaluate(KERNEL_STATE)
        except Exception as shot_error:  # the page itself may be gone
            shot, state = f"(no screenshot: {shot_error})", "?"
        print(f"slider test failed; screenshot: {shot}")
        raise AssertionError(f"{type(e).__name__}: {str(e)[:1500]}\nscreenshot: {shot}\nkernel state: {state}\n"
                             f"JupyterLab log (end):\n{log_path.read_text()[-3000:]}") from e
    finally:
        page.close()


def _run_notebook_and_drag_the_slider(page, url):
    page.goto(f"{url}/lab/tree/02_image_perturbations.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
    # Run All only once the notebook's own kernel is connected and idle: clicked earlier,
    # JupyterLab either drops the run (cells stay "[ ]") or starts a second kernel and asks
    # "Select Kernel", depending on how far its session start has got.
    page.wait_for_function(KERNEL_IDLE, polling=250)
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").first.inner_text()
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()
    # The first code cell starts at once (prompt "[*]" or a count); not a silent no-op.
    page.locator(".jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for(
        state="attached", timeout=60_000)
    # The last cell prints "ok: ..." once every cell above it (the sliders included) ran.
    page.locator(".jp-OutputArea-output", has_text="ok: box areas").wait_for(state="attached")
    page.wait_for_function(KERNEL_IDLE, polling=250)
    widget = page.locator(".widget-interact").first
    slider = widget.locator(".widget-slider").last  # the CutMix box area, default 20 %
    slider.scroll_into_view_if_needed()
    widget.locator(".widget-output img").first.wait_for(state="visible")
    before = _figure_src(widget)
    widget.screenshot(path=str(SHOTS / "slider_before.png"))

    # Drag the handle to the far right of its track (60 %), as a user would.
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-base").first.bounding_box()
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] + 5, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    assert slider.locator(".widget-readout").inner_text().strip() == "0.60"

    # The widget redraws on every step of the drag: wait for a new figure, then for the
    # kernel to go idle and the figure to settle, so the screenshot shows the final value.
    deadline, after, stable = time.time() + 240, before, 0
    while time.time() < deadline and stable < 3:
        page.wait_for_timeout(1000)
        idle = page.evaluate(KERNEL_IDLE)
        src = _figure_src(widget)
        stable = stable + 1 if (src == after and src not in ("", before) and idle) else 0
        after = src
    widget.screenshot(path=str(SHOTS / "slider_after.png"))
    assert after and after != before, "moving the slider did not redraw the figure"


@pytest.fixture(scope="module")
def smoke_book():
    from crossmatch_lite.tutorial.book import build

    return build(smoke=True)


def test_every_book_page_shows_its_figures(browser, smoke_book):
    from crossmatch_lite.tutorial.book import notebooks

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    html = smoke_book.parent
    for nb in notebooks(ROOT):
        page.goto((html / f"{nb.stem}.html").as_uri())
        images = page.locator("article img, main img, .bd-article img")
        n = images.count()
        shown = 0
        for i in range(n):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete", arg=img.element_handle())
            size = img.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
            shown += size[0] > 0 and size[1] > 0
        assert shown >= 1 and shown == n, f"{nb.stem}: {shown} of {n} figures shown"
        if nb.stem == "02_image_perturbations":
            page.screenshot(path=str(SHOTS / "book_02_image_perturbations.png"), full_page=False)
    page.close()

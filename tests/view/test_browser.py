"""fcnseg view in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright
uploads an image, checks the overlay and legend, moves the opacity slider, toggles a class,
opens the worst image in Inspect and the training curves.

With ``FCNSEG_SCREENSHOTS=DIR`` it also saves a screenshot of each page there (the README's);
``FCNSEG_VIEW_RUN=RUN_DIR`` and ``FCNSEG_VIEW_DATA=NAME:ROOT`` show that run and dataset instead
of the test's tiny one.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium for the browser tests: apt-get install chromium (CI installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

from werkzeug.serving import make_server  # noqa: E402

from fcnseg.data import build_dataset  # noqa: E402
from fcnseg.view import ViewState, create_app  # noqa: E402

# As the machine's notes advise for a closed network: no background connections, no sandbox
# (root), no GPU.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(run):
    run_dir, data = run
    name, root = "synthetic", data
    if os.environ.get("FCNSEG_VIEW_RUN"):
        run_dir = Path(os.environ["FCNSEG_VIEW_RUN"])
        name, _, given = os.environ["FCNSEG_VIEW_DATA"].partition(":")
        root = Path(given)
    state = ViewState.open(run_dir, build_dataset(name, root, "val"))
    http = make_server("127.0.0.1", 0, create_app(state), threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_port}/", state, root
    http.shutdown()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server[0])
        page.wait_for_function("document.getElementById('model-name').textContent !== ''")
        yield page
        browser.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("FCNSEG_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"view-{name}.png"), full_page=True)


def slide(page, value: int) -> None:
    """Move the opacity slider as a person does: its value, then its input event."""
    page.eval_on_selector(
        "#opacity", f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}"
    )


def test_segment_page(page, server, tmp_path) -> None:
    state = server[1]
    image_path = Path(state.dataset.samples[0][0])
    width, height = Image.open(image_path).size
    page.set_input_files("#file", str(image_path))
    page.wait_for_selector("#result:not([hidden])")
    size = page.eval_on_selector("#overlay", "c => [c.width, c.height]")
    assert size == [width, height]
    classes = state.info()["model"]["classes"]
    assert page.locator("#legend tr").count() == len(classes)
    shares = [float(t.rstrip("%")) for t in page.locator("#legend td.share").all_inner_texts()]
    assert sum(shares) == pytest.approx(100, abs=0.1 * len(classes))

    def alpha_and_class() -> tuple[int, int]:
        return tuple(
            page.evaluate(
                "() => { const c = document.getElementById('overlay');"
                " const a = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1)"
                ".data[3]; return [a, state.labels[(c.height >> 1) * c.width + (c.width >> 1)]]; }"
            )
        )

    alpha, label = alpha_and_class()
    assert alpha == round(2.55 * 55)  # the slider's starting opacity
    slide(page, 100)
    assert alpha_and_class() == (255, label)
    box = page.locator("#overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.inner_text("#under") == classes[label]
    slide(page, 55)
    shot(page, "segment")
    page.locator(f"#legend tr[data-class='{label}'] input").uncheck()
    assert alpha_and_class()[0] == 0  # that class toggled off
    page.locator(f"#legend tr[data-class='{label}'] input").check()
    assert page.get_attribute("#download", "href").endswith("/mask.png")


def test_a_bad_upload_shows_a_message(page, tmp_path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.png" in page.inner_text("#error")


def test_inspect_opens_the_worst_image(page, server) -> None:
    page.click("#tab-inspect")
    page.wait_for_selector("#worst-list li.active", timeout=120_000)
    worst = server[1].inspect()["images"][0]
    assert page.get_attribute("#worst-list li.active", "data-index") == str(worst["index"])
    page.wait_for_function(
        "[...document.querySelectorAll('#inspect-images img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#inspect-images img").count() == 4
    classes = server[1].info()["model"]["classes"]
    assert page.locator("#class-iu tr").count() == len(classes) + 1
    assert page.locator("#confusion tr").count() == len(classes) + 1
    shot(page, "inspect")


def test_training_curves(page) -> None:
    page.click("#tab-training")
    page.wait_for_selector("#curves svg")
    assert page.locator("#curves svg").count() == 2
    assert "epochs so far" in page.inner_text("#training-status")
    # The loss has a point per epoch; mean IU only the validated epochs' (1 and 3).
    loss = page.get_attribute("#curves svg[data-title=loss] polyline", "points")
    iu = page.get_attribute("#curves svg[data-title=validation] polyline", "points")
    assert len(loss.split()) == 3 and len(iu.split()) == 2 and "NaN" not in iu
    shot(page, "training")

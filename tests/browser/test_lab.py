"""The notebooks in a real browser: JupyterLab (lab extra) driven in headless Debian Chromium.

``plotting_trials.ipynb``: run it, change the variant and a slider, and see the picture and the
axes figure redrawn and the audio player there. ``visualize.ipynb``: run it on a model trained
here with the stand-in backbone, and see the predicted class, the chart and the audio player.
``train.ipynb``: run it, and see each misclassified test clip's picture and audio player, and the
embedding map. Skipped, with the reason, where Chromium, chromedriver, selenium or JupyterLab are missing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY_VARIANT = {"name": "tmel", "base": "mel", "height": 32, "width": 32, "duration": 1.0}
WAIT = 240  # seconds: a loaded 2-core machine starts kernels slowly

#: Runs every cell of the current notebook (JupyterLab's own command) and reports the outcome.
RUN_ALL = """
const done = arguments[arguments.length - 1];
(async () => {
  try {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    await app.commands.execute('notebook:run-all-cells');
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    for (const c of cells) {
      for (let i = 0; i < c.model.outputs.length; i++) {
        const o = c.model.outputs.get(i).toJSON();
        if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
      }
    }
    done({ok: true, counts: cells.map(c => c.model.executionCount), errors: errors,
          kernel: panel.sessionContext.session.kernel.name});
  } catch (e) {
    done({ok: false, error: String(e && e.stack || e)});
  }
})();
"""


def prepare(src: str, dest: Path, **parameters) -> Path:
    """The notebook with its parameters injected (papermill, not executed)."""
    import papermill as pm

    from soundlib.lab.notebook import notebooks_dir

    pm.execute_notebook(str(notebooks_dir() / src), str(dest), parameters=parameters, prepare_only=True,
                        progress_bar=False)
    return dest


def wait_for(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def open_and_run(browser, lab, name: str) -> dict:
    url, token = lab
    browser.get(f"{url}/lab/tree/{name}?token={token}")
    wait_for(lambda: browser.execute_script(
        "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
        "return !!(w && w.context && w.context.path === arguments[0] && w.sessionContext);", name),
        f"JupyterLab to open {name}")
    result = browser.execute_async_script(RUN_ALL)
    assert result["ok"], result.get("error")
    assert result["kernel"] == "soundlib", result
    assert not result["errors"], result["errors"]
    assert all(n is not None for n in result["counts"]), f"cells left unexecuted: {result['counts']}"
    return result


def widget_images(browser) -> list[str]:
    return [img.get_attribute("src") for img in browser.find_elements("css selector", "img.widget-image")]


def test_plotting_trials_explorer(browser, lab, lab_root, corpus):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    prepare("plotting_trials.ipynb", lab_root / "plotting_trials.ipynb", dataset=str(corpus), variant="mel",
            generate_if_missing=False, output_png=str(lab_root / "trials.png"))
    open_and_run(browser, lab, "plotting_trials.ipynb")
    first = wait_for(lambda: (lambda s: s if len(s) == 2 and all(s) else None)(widget_images(browser)),
                     "the picture and the axes figure")
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea audio"), "no audio player"

    variant = Select(browser.find_element(
        By.XPATH, "//div[contains(@class,'widget-dropdown')][.//label[normalize-space()='variant']]//select"))
    t0 = time.monotonic()
    variant.select_by_visible_text("merged")
    merged = wait_for(lambda: (lambda s: s if s[0] != first[0] and s[1] != first[1] else None)(widget_images(browser)),
                      "the picture to redraw for the merged variant")
    print(f"variant change redrawn in {time.monotonic() - t0:.2f} s")
    wait_for(lambda: "variant merged" in browser.find_element(By.CSS_SELECTOR, ".widget-html").text,
             "the caption to name the merged variant")

    readout = browser.find_element(
        By.XPATH, "//div[contains(@class,'widget-slider')][.//label[normalize-space()='n_mels']]"
                  "//div[contains(@class,'widget-readout')]")
    assert readout.text == "128"
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("64", Keys.ENTER)
    wait_for(lambda: widget_images(browser)[0] != merged[0], "the picture to redraw for n_mels = 64")
    assert readout.text == "64"
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea audio"), "the audio player went away"


def test_visualize_prediction(browser, lab, lab_root, corpus, tiny_backbone):
    from selenium.webdriver.common.by import By

    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold
    from soundlib.methods.train import TrainConfig
    from soundlib.pictures.variants import resolve_variant

    run = lab_root / "run"
    train_fold(load_dataset(corpus), test_fold=1, out_dir=run, progress=False,
               config=EvalConfig(method="frozen", spec=resolve_variant(TINY_VARIANT), backbone=str(tiny_backbone),
                                 train=TrainConfig(epochs=3)))
    labels = (run / "model" / "labels.txt").read_text().split()
    prepare("visualize.ipynb", lab_root / "visualize.ipynb", dataset=str(corpus), model_dir=str(run), seed=4,
            top_k=3)
    open_and_run(browser, lab, "visualize.ipynb")
    text = wait_for(lambda: (lambda t: t if "predicted" in t else None)(
        " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))),
        "the prediction")
    m = re.search(r"true class (\S+); predicted (\S+) \(", text)
    assert m and m.group(1) in labels and m.group(2) in labels, text
    table = browser.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output table")
    first_row = next(line for line in table.text.splitlines() if line.startswith("1 "))
    assert first_row.split()[1] == m.group(2), table.text  # rank 1 of the top-k table
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"), "no picture / bar chart"
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea audio"), "no audio player"


#: For each text, the code cell whose source holds it, scrolled into view: its rendered players and pictures.
CELL_VIEWS = """
const texts = arguments[0];
const done = arguments[arguments.length - 1];
(async () => {
  try {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets;
    const found = {};
    for (const text of texts) {
      const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(text));
      if (i < 0) { found[text] = null; continue; }
      await panel.content.scrollToItem(i, 'start');
      let audio = 0, img = 0;
      for (let k = 0; k < 100 && !img; k++) {  // up to 20 s for the outputs to render
        await new Promise(r => setTimeout(r, 200));
        audio = cells[i].node.querySelectorAll('.jp-OutputArea-output audio').length;
        img = cells[i].node.querySelectorAll('.jp-OutputArea-output img').length;
      }
      found[text] = {audio: audio, img: img, shown: document.body.contains(cells[i].node)};
    }
    done({ok: true, found: found});
  } catch (e) {
    done({ok: false, error: String(e && e.stack || e)});
  }
})();
"""


def test_train_analysis_views(browser, lab, lab_root, corpus, tiny_backbone):
    """train.ipynb's analysis: the misclassified clips each with a picture and a player, the embedding map."""
    import pandas as pd

    run = lab_root / "train-run"
    prepare("train.ipynb", lab_root / "train.ipynb", dataset=str(corpus), fold=1, variant=TINY_VARIANT,
            backbone=str(tiny_backbone), epochs=2, output_dir=str(run), export_model=False, alert=False,
            generate_if_missing=False)
    open_and_run(browser, lab, "train.ipynb")
    predictions = pd.read_csv(run / "predictions.csv")
    wrong = int((predictions["true"] != predictions["predicted"]).sum())
    assert wrong > 0, "the run should get some test clips wrong"
    result = browser.execute_async_script(CELL_VIEWS, ["notebook.misclassified", "embedmap.embedding_map"])
    assert result["ok"], result.get("error")
    shown, emap = result["found"]["notebook.misclassified"], result["found"]["embedmap.embedding_map"]
    assert shown["shown"] and shown["audio"] == min(wrong, 4) and shown["img"] == min(wrong, 4), shown
    assert emap["shown"] and emap["img"] == 1 and emap["audio"] == 0, emap

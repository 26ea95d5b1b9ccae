"""train.ipynb on an audio network in a real browser: with ``method="mn04"`` the header names mn04 and its
32-kHz windows, each misclassified clip shows mn04's own log-mel (with its colour bar) and a player, and the
embedding map is drawn (mn04's embeddings). Screenshots of those views are kept in
``test-artifacts/browser/`` for a person to look at."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS
from .test_lab import CELL_VIEWS, TINY_VARIANT, open_and_run, prepare

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Scrolls the code cell holding ``arguments[0]`` to the top of the view (its outputs below it).
SCROLL_TO = """
const done = arguments[arguments.length - 1];
const panel = window.jupyterapp.shell.currentWidget;
const cells = panel.content.widgets;
const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(arguments[0]));
panel.content.scrollToItem(i, 'start').then(() => setTimeout(() => done(i), 1500));
"""


def test_train_on_mn04_shows_what_mn04_sees(browser, lab, lab_root, corpus):
    import pandas as pd
    from selenium.webdriver.common.by import By

    run = lab_root / "train-mn04"
    prepare("train.ipynb", lab_root / "train_mn04.ipynb", dataset=str(corpus), fold=1, variant=TINY_VARIANT,
            method="mn04", output_dir=str(run), export_model=False, alert=False, generate_if_missing=False)
    open_and_run(browser, lab, "train_mn04.ipynb")
    text = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
    assert "method mn04 (frozen, embedder mn04 (1-s windows at 32 kHz every 0.5 s" in text, text[:2000]
    assert "efficientnet" not in text.lower()
    wrong = int((pd.read_csv(run / "predictions.csv")["true"] != pd.read_csv(run / "predictions.csv")["predicted"])
                .sum())
    result = browser.execute_async_script(CELL_VIEWS, ["notebook.misclassified", "embedmap.embedding_map"])
    assert result["ok"], result.get("error")
    shown, emap = result["found"]["notebook.misclassified"], result["found"]["embedmap.embedding_map"]
    assert shown["shown"] and shown["audio"] == min(wrong, 4) and shown["img"] == min(wrong, 4), shown
    assert emap["shown"] and emap["img"] == 1, emap
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(["views.describe_method", "notebook.misclassified", "embedmap.embedding_map"]):
        browser.execute_async_script(SCROLL_TO, source)
        browser.save_screenshot(str(ARTIFACTS / f"train_mn04_{i}.png"))

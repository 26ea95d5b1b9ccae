"""Build hook: ship ``notebooks/*.ipynb`` inside the package, as ``soundlib/notebooks/`` (package data).

Everything else is declared in pyproject.toml. The notebooks live at the top of the
source tree, where ``make lab`` opens them; a wheel carries a copy, which
``soundlib.lab.notebook.notebooks_dir()`` finds and ``soundlib notebooks DIR`` copies out.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies the notebooks into ``<build>/soundlib/notebooks/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's notebooks/
            return
        target = Path(self.build_lib, "soundlib", "notebooks")
        self.mkpath(str(target))
        for notebook in sorted(Path("notebooks").glob("*.ipynb")):
            self.copy_file(str(notebook), str(target / notebook.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})

"""The embedded demo (``make demo``): the skip architecture's gain (paper §4.2) on a CPU, with
nothing downloaded.

* :mod:`.run`: generate the synthetic set, train FCN-32s then FCN-8s, evaluate (:func:`run_demo`);
* :mod:`.report`: the report's figures, Markdown and HTML;
* :mod:`.settings`: the demo's size (:data:`PRESETS`) and stages.

Owns: the demo. May import: every layer below the CLI.
"""

from .run import run_demo
from .settings import PRESETS, DemoSettings

__all__ = ["PRESETS", "DemoSettings", "run_demo"]

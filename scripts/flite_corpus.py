"""Render an English manifest's sentences with Flite: scripts/engine_corpus.py with ``--engine flite``.

Kept so that existing commands keep working; see engine_corpus.py for the options.
"""

from __future__ import annotations

import os
import runpy
import sys

if __name__ == "__main__":
    sys.argv[1:1] = ["--engine", "flite"]
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_corpus.py"), run_name="__main__")

"""scripts/error_phonemes.py: substitutions split by how the reference and the hypothesis sound."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def test_homophones_near_misses_and_misspellings_are_told_apart(load_script: Callable[[str], ModuleType]) -> None:
    ep = load_script("error_phonemes")
    assert ep.edit_distance("kat", "kaat") == 1 and ep.edit_distance("", "ab") == 2
    assert ep.classify("They lost their keys.", "They lost there keys", "en-us") == {"same": 1, "one apart": 0, "other": 0, "words": 4}
    assert ep.classify("He went to Chicago.", "He went to Shehicago", "en-us")["other"] == 1
    assert ep.classify("A red cat.", "a red cat", "en-us") == {"same": 0, "one apart": 0, "other": 0, "words": 3}


def test_the_table_counts_each_delay(tmp_path: Path) -> None:
    rows = [
        {"language": "en", "delay_ms": 480, "reference": "They lost their keys", "hypothesis": "They lost there keys"},
        {"language": "en", "delay_ms": 960, "reference": "They lost their keys", "hypothesis": "They lost their keys"},
        {"language": "de", "delay_ms": 480, "reference": "Hallo Welt", "hypothesis": "Hallo Wald"},
    ]
    path = tmp_path / "hyp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    script = ROOT / "scripts" / "error_phonemes.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[2] == "| 480 ms | 4 | 1 | 1 (100.0 %) | 0 (0.0 %) | 0 (0.0 %) |"
    assert lines[3] == "| 960 ms | 4 | 0 | 0 (0.0 %) | 0 (0.0 %) | 0 (0.0 %) |"

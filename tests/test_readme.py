"""The README's "Python API" example runs as written (in a fresh interpreter, in a temporary
folder) and prints what it says it prints."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section must hold exactly one python example"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_api_example_runs(tmp_path):
    code = python_api_example()
    assert "blemore.load_model" in code and "blemore.score" in code and "blemore.train" in code
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"test: presence \d\.\d{3}, salience \d\.\d{3}", out.stdout)
    assert "validation_mean" in out.stdout and "emotions" in out.stdout  # (pandas elides middle columns)
    assert (tmp_path / "api_demo" / "model" / "bundle.json").is_file()

"""The top-level Python API: light to import, and the example of docs/api.md runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import fpar

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_import_fpar_loads_no_heavy_library():
    code = "import sys, fpar; print(sorted(m for m in ('torch', 'lightning', 'cv2') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_public_name_resolves_and_is_documented():
    documented = DOC.read_text()
    for name in fpar.__all__[1:]:
        assert getattr(fpar, name) is not None
        assert f"`{name}" in documented or f" {name}`" in documented or f"`{name}(" in documented, name
    with pytest.raises(AttributeError):
        fpar.no_such_name


@pytest.mark.slow
def test_the_api_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    monkeypatch.chdir(tmp_path)  # the example's relative paths land here
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_api"})
    out = capsys.readouterr().out
    assert "synthetic/rgb-attention_r18_8f_stage2" in out and "S2 accuracy" in out
    assert (tmp_path / "shared" / "rgb-attention" / "model.safetensors").is_file()
    assert re.search(r"\[\('\w+', 0\.\d+\), \('\w+', 0\.\d+\)\]", out), out

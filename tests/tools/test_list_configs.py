"""MODEL_ZOO.md's generated table is what tools/list_configs.py makes of the configs as committed.

Both tests call the tool's ``main`` in this process: loading every config takes most of the time, and
``markdown()`` caches its block, so the configs are loaded once for the two tests.
"""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def list_configs():
    spec = importlib.util.spec_from_file_location("list_configs", os.path.join(ROOT, "tools", "list_configs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_zoo_table_is_up_to_date(list_configs, capsys):
    rc = list_configs.main(["--check", os.path.join(ROOT, "MODEL_ZOO.md")])
    assert rc == 0, (
        "MODEL_ZOO.md is out of date; run `python tools/list_configs.py --write MODEL_ZOO.md`\n"
        + capsys.readouterr().err[-2000:])


def test_check_fails_on_a_stale_table(list_configs, tmp_path, capsys):
    with open(os.path.join(ROOT, "MODEL_ZOO.md")) as f:
        text = f.read()
    assert "apd_mask_rcnn_R34_to_R18_FPN_demo.py" in text
    stale = tmp_path / "MODEL_ZOO.md"
    stale.write_text(text.replace("apd_mask_rcnn_R34_to_R18_FPN_demo.py", "renamed_demo.py"))
    assert list_configs.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert stale.read_text() != text  # --check never rewrites the file

"""MODEL_ZOO.md's generated table is what tools/list_configs.py makes of the configs as committed."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_model_zoo_table_is_up_to_date():
    proc = subprocess.run([sys.executable, "tools/list_configs.py", "--check", "MODEL_ZOO.md"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (
        "MODEL_ZOO.md is out of date; run `python tools/list_configs.py --write MODEL_ZOO.md`\n"
        + proc.stdout[-2000:] + proc.stderr[-2000:])


def test_check_fails_on_a_stale_table(tmp_path):
    with open(os.path.join(ROOT, "MODEL_ZOO.md")) as f:
        text = f.read()
    stale = tmp_path / "MODEL_ZOO.md"
    stale.write_text(text.replace("apd_mask_rcnn_R34_to_R18_FPN_demo.py", "renamed_demo.py"))
    proc = subprocess.run([sys.executable, "tools/list_configs.py", "--check", str(stale)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1

"""Constants and helpers shared by the reliability tests (conftest.py holds the fixtures)."""
import json
import os

from helpers import TINY_TRAIN_OVERRIDES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
# The demo APD run shrunk: batch 2, 64×128 crops, no worker processes, log every step, no periodic eval.
TINY = [*TINY_TRAIN_OVERRIDES, "train.eval_period=1000"]


def read_metrics(output_dir):
    """metrics.json of a run: one dict per line."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]

"""Checkpoints written by the distillers' current layout still load: the state-dict keys and shapes of the
demo distillers (segmentation APD + KD; R-CNN dense APD + KD, ROI APD + KD) equal the ones
recorded in ``data/distiller_checkpoint_layouts.json`` (written once by building these configs)."""
import json
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

LAYOUTS = os.path.join(os.path.dirname(__file__), "data", "distiller_checkpoint_layouts.json")
with open(LAYOUTS) as f:
    RECORDED = json.load(f)


@pytest.mark.parametrize("config", sorted(RECORDED))
def test_state_dict_keys_and_shapes_are_the_recorded_ones(config):
    cfg = LazyConfig.load(config)
    cfg.model.teacher_weights = None  # the layout does not depend on the teacher's weights
    with torch.device("meta"):  # the real modules, without paying for weight init
        model = instantiate(cfg.model)
    layout = {key: "x".join(map(str, value.shape)) for key, value in model.state_dict().items()}
    assert layout == RECORDED[config]

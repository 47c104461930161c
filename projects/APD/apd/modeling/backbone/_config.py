"""The yacs side of the backbones: the node a builder reads, with an error that says how to add it."""
from detectron2.config import CfgNode as CN


def require_cfg_node(cfg: CN, key: str) -> CN:
    """``cfg.MODEL.<key>``, or a KeyError naming the call that adds it."""
    if key not in cfg.MODEL:
        raise KeyError(
            f"cfg.MODEL.{key} is missing: call "
            "apd.modeling.backbone.add_apd_backbone_config(cfg) before merging/building"
        )
    return cfg.MODEL[key]

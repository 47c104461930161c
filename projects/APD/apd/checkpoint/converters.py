"""Checkpoint converters: rename the keys of checkpoints trained elsewhere to this project's module names.

Every converter is a pure function ``state -> state`` over a flat ``{name: tensor}`` dict (a checkpoint
container such as ``{"state_dict": ...}`` / ``{"model_state_dict": ...}`` and a DDP ``module.`` prefix are
unwrapped first, see :func:`apd.checkpoint.io.unwrap_state_dict`). Keys are renamed by explicit rules; tensors are not
changed, except where a layout orders channels differently (CIRKD's ASPP projection; listed in
``ConversionResult.changed``). A source key that no rule knows is an error that lists every such key:
nothing is silently dropped, apart from the documented ImageNet classifiers. The output keys are those of a
:class:`~apd.modeling.meta_arch.segmentor.Segmentor` (``backbone.*``, ``sem_seg_head.*``), so the result
can be a ``train.init_checkpoint`` of a student config or the ``model.teacher_weights`` of a distiller.

==============================  ================================================  ==========================
source                          source layout                                     target
==============================  ================================================  ==========================
torchvision ResNet-18..152      ``conv1 bn1 layer1..4 fc``                        ``DilatedResNet(deep_stem=False)``
semseg / APD "resnet*_v2"       ``conv1..3 bn1..3 layer1..4 fc`` (deep stem)      ``DilatedResNet(deep_stem=True)``
torchvision MobileNetV2         ``features.0..18 classifier``                     ``DilatedMobileNetV2``
official APD PSPNet             ``layer0..4 ppm.features ppm.merge cls.0 aux``    ``DilatedResNet + PSPHead``
semseg PSPNet                   ``layer0..4 ppm.features cls.{0,1,4} aux``        ``DilatedResNet + PSPHead``
official APD DeepLabV3          ``layer0..4 ppm.{image_pool,aspp_modules,``       ``DilatedResNet + ASPPHead``
                                ``bottleneck} cls.0 aux``
CIRKD DeepLabV3                 ``pretrained.* head.{aspp,block} auxlayer``       ``DilatedResNet + ASPPHead``
                                                                                  ``(project_channels=C)``
==============================  ================================================  ==========================

ImageNet classifiers (``fc.*``, ``features.18.*``, ``classifier.*``) are dropped. The heads of ImageNet
checkpoints do not exist, so loading them into a full model leaves ``sem_seg_head.*`` missing (expected
for an ImageNet init; Detectron2's checkpointer loads non-strictly and lists them).

Architecture flags the converted weights need (the keys alone do not carry them):

- official APD / semseg PSPNet and DeepLabV3: ``DilatedResNet(deep_stem=True)``, output stride 8, default
  (PSPNet) dilation placement except for the 60-class PASCAL-Context models (``torchvision_dilation=True``);
  heads with ``align_corners=True``; APD DeepLabV3 rates (12, 24, 36), 512-channel branches.
- CIRKD DeepLabV3: ``DilatedResNet(deep_stem=True, torchvision_dilation=True)`` (its ResNetV1b places the
  dilation as torchvision does, also for ResNet-18); ``ASPPHead(project_channels=512, aspp_channels=512,
  channels=512, dilations=(12, 24, 36), align_corners=True)``, aux head width = res4 channels / 4; BGR
  input with mean (104.01, 116.67, 122.68), std 1 (configs/cityscapes/deeplabv3_r{101,18}_cirkd.py).
  CIRKD's ASPP concatenates its branches as b0 (1×1), b1..b3 (atrous), b4 (pooling) and projects them
  (``head.aspp.project``: 5·C→C 1×1 conv, BN, ReLU, Dropout(0.5)) before the 3×3 ``head.block``;
  ASPPHead concatenates pooling first, so the projection weight's input-channel blocks are reordered
  (an exact permutation).

The rule machinery (:class:`~apd.checkpoint.key_map.KeyMap`) is in :mod:`apd.checkpoint.key_map`; the command
lines (``tools/convert_*.py``) and their checks against a model live in :mod:`apd.checkpoint.cli`.
"""
import re
from typing import Mapping, Optional

import torch

from .io import unwrap_state_dict
from .key_map import (
    BN,
    DROP,
    WB,
    ConversionError,
    ConversionResult,
    KeyMap,
    conv_norm_rules,
    resnet_block_rules,
    stem_rules,
)

__all__ = [
    "ConversionError",
    "ConversionResult",
    "convert_torchvision_resnet",
    "convert_torchvision_mobilenet_v2",
    "convert_official_apd_pspnet",
    "convert_official_apd_deeplabv3",
    "convert_official_apd",
    "convert_cirkd_deeplabv3",
]

# official APD / semseg segmentation models wrap the deep stem as layer0 = Sequential(conv1, bn1, relu,
# conv2, bn2, relu, conv3, bn3, relu, maxpool)
_LAYER0_RULES = [
    (r"layer0\.0\.weight", "backbone.conv1.weight"),
    (r"layer0\.1\." + BN, r"backbone.bn1.\g<bn>"),
    (r"layer0\.3\.weight", "backbone.conv2.weight"),
    (r"layer0\.4\." + BN, r"backbone.bn2.\g<bn>"),
    (r"layer0\.6\.weight", "backbone.conv3.weight"),
    (r"layer0\.7\." + BN, r"backbone.bn3.\g<bn>"),
]
# aux = Sequential(3×3 conv, BN, ReLU, Dropout2d, 1×1 conv) -> FCNAuxHead(conv [d2 Conv2d + norm], classifier)
_AUX_RULES = conv_norm_rules(r"aux\.0", r"aux\.1", "sem_seg_head.aux_head.conv") + [
    (r"aux\.4\." + WB, r"sem_seg_head.aux_head.classifier.\g<wb>"),
]
# PPM branches: Sequential(AdaptiveAvgPool2d, 1×1 conv, BN, ReLU) -> stages.{i} = Sequential(pool, d2 Conv2d)
_PPM_RULES = conv_norm_rules(
    r"ppm\.features\.(?P<i>\d+)\.1", r"ppm\.features\.(?P<i>\d+)\.2", r"sem_seg_head.ppm.stages.\g<i>.1"
)
_SEGMENTATION_BACKBONE_RULES = _LAYER0_RULES + resnet_block_rules("")


def _pspnet_map(name: str, merge: str, classifier: str, layout_hint: str) -> KeyMap:
    """An official PSPNet layout: the segmentation backbone, the PPM branches, the aux head, and the
    merge conv (3×3 conv ``{merge}.0``, BN ``{merge}.1``) and 1×1 classifier (``{classifier}``), the two
    places where the APD and semseg layouts differ."""
    m, c = re.escape(merge), re.escape(classifier)
    return KeyMap(
        name,
        _SEGMENTATION_BACKBONE_RULES
        + _PPM_RULES
        + conv_norm_rules(m + r"\.0", m + r"\.1", "sem_seg_head.merge.0")
        + [(c + r"\." + WB, r"sem_seg_head.classifier.\g<wb>")]
        + _AUX_RULES,
        layout_hint,
    )


# APD's PPM owns the merge conv: merge = Sequential(3×3 conv, BN, ReLU, Dropout2d); cls = 1×1 conv
_APD_PSPNET = _pspnet_map(
    "official_apd_pspnet (apd layout)",
    "ppm.merge",
    "cls.0",
    "APD model/pspnet.py: [module.]layer0.{0,1,3,4,6,7}, layer1..4, ppm.features.{i}.{1,2}, "
    "ppm.merge.{0,1}, cls.0, aux.{0,1,4}",
)
# semseg: cls = Sequential(3×3 conv, BN, ReLU, Dropout2d, 1×1 conv)
_SEMSEG_PSPNET = _pspnet_map(
    "official_apd_pspnet (semseg layout)",
    "cls",
    "cls.4",
    "semseg model/pspnet.py: [module.]layer0.{0,1,3,4,6,7}, layer1..4, ppm.features.{i}.{1,2}, "
    "cls.{0,1,4}, aux.{0,1,4}",
)
# mmcv ConvModule names its parts conv / bn; APD's ASPPHead: image_pool = Sequential(pool, ConvModule),
# aspp_modules = [ConvModule(1×1), ConvModule(3×3, d) ...], bottleneck = ConvModule(3×3)
_APD_DEEPLABV3 = KeyMap(
    "official_apd_deeplabv3",
    _SEGMENTATION_BACKBONE_RULES
    + conv_norm_rules(r"ppm\.image_pool\.1\.conv", r"ppm\.image_pool\.1\.bn", "sem_seg_head.aspp.image_pool.1")
    + conv_norm_rules(
        r"ppm\.aspp_modules\.(?P<j>\d+)\.conv",
        r"ppm\.aspp_modules\.(?P<j>\d+)\.bn",
        r"sem_seg_head.aspp.branches.\g<j>",
    )
    + conv_norm_rules(r"ppm\.bottleneck\.conv", r"ppm\.bottleneck\.bn", "sem_seg_head.bottleneck.0")
    + [(r"cls\.0\." + WB, r"sem_seg_head.classifier.\g<wb>")]
    + _AUX_RULES,
    "APD model/deeplabv3.py: [module.]layer0.{0,1,3,4,6,7}, layer1..4, ppm.image_pool.1.{conv,bn}, "
    "ppm.aspp_modules.{j}.{conv,bn}, ppm.bottleneck.{conv,bn}, cls.0, aux.{0,1,4}",
)

_CIRKD_PROJECT = "sem_seg_head.project.0.weight"
_CIRKD_BACKBONE_RULES = stem_rules("pretrained.", deep_stem=True) + resnet_block_rules("pretrained.")
# CIRKD models/deeplabv3.py head. Branch order there: b0 (1×1), b1..b3 (3×3 atrous), b4 (image pooling);
# ASPPHead: image_pool, branches[0] (1×1), branches[1..3] (3×3 atrous).
_CIRKD_HEAD_RULES = (
    conv_norm_rules(r"head\.aspp\.b0\.0", r"head\.aspp\.b0\.1", "sem_seg_head.aspp.branches.0")
    + conv_norm_rules(
        r"head\.aspp\.b(?P<j>[123])\.block\.0",
        r"head\.aspp\.b(?P<j>[123])\.block\.1",
        r"sem_seg_head.aspp.branches.\g<j>",
    )
    + conv_norm_rules(r"head\.aspp\.b4\.gap\.1", r"head\.aspp\.b4\.gap\.2", "sem_seg_head.aspp.image_pool.1")
    # project = Sequential(1×1 conv 5·C→C, BN, ReLU, Dropout(0.5)) -> ASPPHead(project_channels=C).project =
    # Sequential(d2 Conv2d + norm + ReLU, Dropout); the conv's input channels are reordered afterwards
    # (the conv's target is _CIRKD_PROJECT)
    + conv_norm_rules(r"head\.aspp\.project\.0", r"head\.aspp\.project\.1", "sem_seg_head.project.0")
    # block = Sequential(3×3 conv C→C, BN, ReLU, Dropout(0.1), 1×1 conv): the bottleneck (reads the projection)
    + conv_norm_rules(r"head\.block\.0", r"head\.block\.1", "sem_seg_head.bottleneck.0")
    + [(r"head\.block\.4\." + WB, r"sem_seg_head.classifier.\g<wb>")]
    # auxlayer = _FCNHead: block = Sequential(3×3 conv in→in/4, BN, ReLU, Dropout, 1×1 conv)
    + conv_norm_rules(r"auxlayer\.block\.0", r"auxlayer\.block\.1", "sem_seg_head.aux_head.conv")
    + [(r"auxlayer\.block\.4\." + WB, r"sem_seg_head.aux_head.classifier.\g<wb>")]
)
_CIRKD_LAYOUT = (
    "CIRKD models/deeplabv3.py: pretrained.{conv1..3,bn1..3,layer1..4}, head.aspp.{b0.{0,1},"
    "b1..b3.block.{0,1},b4.gap.{1,2},project.{0,1}}, head.block.{0,1,4}, auxlayer.block.{0,1,4}"
)
_CIRKD_DEEPLABV3 = KeyMap("cirkd_deeplabv3", _CIRKD_BACKBONE_RULES + _CIRKD_HEAD_RULES, _CIRKD_LAYOUT)
_CIRKD_DEEPLABV3_BACKBONE = KeyMap(
    "cirkd_deeplabv3 (backbone only)",
    _CIRKD_BACKBONE_RULES + [(r"(head|auxlayer)\..+", DROP)],
    _CIRKD_LAYOUT,
)


# ------------------------------------------------------------------------------------------ converters
def convert_torchvision_resnet(state: Mapping, *, deep_stem: Optional[bool] = None) -> ConversionResult:
    """ImageNet ResNet → ``DilatedResNet`` backbone keys (``backbone.*``), ``fc.*`` dropped.

    Args:
        state: a torchvision ``resnet18/34/50/101/152`` state dict (``deep_stem=False`` target), or a
            semseg / APD ``resnet*_v2`` deep-stem ImageNet checkpoint (``conv1..3``, ``bn1..3``;
            ``deep_stem=True`` target).
        deep_stem: expected stem; None detects it (``conv2.weight`` present → deep stem).
    """
    state = unwrap_state_dict(state)
    has_deep_stem = "conv2.weight" in state or "conv3.weight" in state
    if deep_stem is None:
        deep_stem = has_deep_stem
    stem = "deep stem conv1..3/bn1..3" if deep_stem else "7×7 stem conv1/bn1"
    hint = f"torchvision-style ResNet with a {stem}: conv1, bn1, ..., layer1..4.{{i}}.*, fc (dropped)"
    if has_deep_stem and not deep_stem:
        hint += " (this checkpoint has conv2/conv3: a deep-stem 'resnet*_v2' checkpoint? use deep_stem=True)"
    name = "torchvision_resnet (deep stem)" if deep_stem else "torchvision_resnet"
    rules = stem_rules("", deep_stem) + resnet_block_rules("") + [(r"fc\." + WB, DROP)]
    return KeyMap(name, rules, hint).apply(state)


def convert_torchvision_mobilenet_v2(state: Mapping) -> ConversionResult:
    """torchvision ``mobilenet_v2`` → ``DilatedMobileNetV2`` keys: ``features.0..17`` → ``backbone.features.*``;
    ``features.18`` (1×1 conv to 1280) and ``classifier`` dropped."""
    block = r"(?P<n>[1-9]|1[0-7])\.conv\.(?P<j>0\.0|1\.0|1|2)\.weight"
    block_bn = r"(?P<n>[1-9]|1[0-7])\.conv\.(?P<j>0\.1|1\.1|2|3)\." + BN
    rules = [
        (r"features\.0\.0\.weight", "backbone.features.0.0.weight"),
        (r"features\.0\.1\." + BN, r"backbone.features.0.1.\g<bn>"),
        (r"features\." + block, r"backbone.features.\g<n>.conv.\g<j>.weight"),
        (r"features\." + block_bn, r"backbone.features.\g<n>.conv.\g<j>.\g<bn>"),
        # last 1×1 conv to 1280 channels and the ImageNet classifier: not part of the segmentation trunk
        (r"features\.18\.0\.weight", DROP),
        (r"features\.18\.1\." + BN, DROP),
        (r"classifier\.1\." + WB, DROP),
    ]
    hint = "torchvision mobilenet_v2: features.0..17 (conv.{0.0,0.1,1.0,1.1,1,2,3}), features.18, classifier"
    return KeyMap("torchvision_mobilenet_v2", rules, hint).apply(unwrap_state_dict(state))


def _detect_pspnet_layout(state: Mapping[str, torch.Tensor]) -> str:
    if any(k.startswith("ppm.merge.") for k in state):
        return "apd"
    if any(k.startswith(("cls.1.", "cls.4.")) for k in state):
        return "semseg"
    cls_keys = sorted(k for k in state if k.startswith("cls."))
    raise ConversionError(
        "official_apd_pspnet: cannot tell the PSPNet layout: no ppm.merge.* (APD model/pspnet.py) and no "
        f"cls.1.* / cls.4.* (semseg model/pspnet.py); cls keys found: {cls_keys or 'none'}"
    )


def convert_official_apd_pspnet(state: Mapping, *, layout: Optional[str] = None) -> ConversionResult:
    """Official APD (``model/pspnet.py``) or semseg PSPNet checkpoint → ``Segmentor(DilatedResNet, PSPHead)``.

    Key map (``module.`` and the ``state_dict`` / ``model_state_dict`` container are unwrapped first)::

        layer0.{0,1,3,4,6,7}            backbone.{conv1,bn1,conv2,bn2,conv3,bn3}
        layer{1..4}.*                   backbone.layer{1..4}.*
        ppm.features.{i}.1 / .2         sem_seg_head.ppm.stages.{i}.1 / .1.norm
        apd:    ppm.merge.0 / .1        sem_seg_head.merge.0 / .0.norm
                cls.0                   sem_seg_head.classifier
        semseg: cls.0 / cls.1           sem_seg_head.merge.0 / .0.norm
                cls.4                   sem_seg_head.classifier
        aux.0 / aux.1 / aux.4           sem_seg_head.aux_head.conv / .conv.norm / .classifier

    Args:
        layout: "apd" (the PPM owns the 3×3 merge conv, ``cls`` is the 1×1 classifier), "semseg"
            (``cls`` = 3×3 conv, BN, ReLU, Dropout, 1×1 conv) or None to detect it.
    """
    state = unwrap_state_dict(state)
    if layout is None:
        layout = _detect_pspnet_layout(state)
    maps = {"apd": _APD_PSPNET, "semseg": _SEMSEG_PSPNET}
    if layout not in maps:
        raise ValueError(f"official_apd_pspnet: layout={layout!r} is not one of {sorted(maps)} or None")
    return maps[layout].apply(state)


def convert_official_apd_deeplabv3(state: Mapping) -> ConversionResult:
    """Official APD DeepLabV3 (``model/deeplabv3.py``, mmcv ``ConvModule`` names) →
    ``Segmentor(DilatedResNet, ASPPHead)``: ``ppm.image_pool.1`` → ``sem_seg_head.aspp.image_pool.1``,
    ``ppm.aspp_modules.{j}`` → ``sem_seg_head.aspp.branches.{j}``, ``ppm.bottleneck`` →
    ``sem_seg_head.bottleneck.0`` (``conv``/``bn`` → weight/``norm``), ``cls.0`` → classifier; backbone and
    ``aux`` as :func:`convert_official_apd_pspnet`."""
    return _APD_DEEPLABV3.apply(unwrap_state_dict(state))


def convert_official_apd(state: Mapping, *, layout: Optional[str] = None) -> ConversionResult:
    """:func:`convert_official_apd_pspnet` or :func:`convert_official_apd_deeplabv3`, picked from the keys."""
    state = unwrap_state_dict(state)
    if any(k.startswith(("ppm.image_pool.", "ppm.aspp_modules.", "ppm.bottleneck.")) for k in state):
        return convert_official_apd_deeplabv3(state)
    if any(k.startswith("ppm.features.") for k in state):
        return convert_official_apd_pspnet(state, layout=layout)
    top = sorted({k.split(".")[0] for k in state})
    raise ConversionError(
        "official_apd: neither a PSPNet (ppm.features.*) nor a DeepLabV3 (ppm.image_pool.*, "
        f"ppm.aspp_modules.*) checkpoint; its top-level modules are {top}"
    )


# CIRKD's _ASPP concatenates (b0, b1, b2, b3, b4 = pooling); ASPPHead (pooling, 1×1, atrous...): the
# position in CIRKD's concatenation of each of ASPPHead's blocks
_CIRKD_ASPP_ORDER = (4, 0, 1, 2, 3)


def _reorder_cirkd_projection(weight: torch.Tensor, branch_channels: int) -> torch.Tensor:
    """CIRKD's ``head.aspp.project.0.weight`` (C_out × 5·C × 1 × 1, input blocks b0, b1, b2, b3, pool) →
    ASPPHead's ``project.0.weight`` (input blocks pool, b0, b1, b2, b3); each block is C channels."""
    n = len(_CIRKD_ASPP_ORDER)
    if weight.dim() != 4 or weight.shape[1] != n * branch_channels:
        raise ConversionError(
            f"cirkd_deeplabv3: head.aspp.project.0.weight has shape {tuple(weight.shape)}; expected "
            f"(C_out, {n}·{branch_channels}, 1, 1): {n} concatenated branches of {branch_channels} channels "
            "(the width of head.aspp.b0.0.weight)"
        )
    blocks = weight.split(branch_channels, dim=1)
    return torch.cat([blocks[i] for i in _CIRKD_ASPP_ORDER], dim=1).contiguous()


def convert_cirkd_deeplabv3(state: Mapping, *, backbone_only: bool = False) -> ConversionResult:
    """CIRKD DeepLabV3 (``models/deeplabv3.py``, ResNetV1b deep-stem backbone ``pretrained.*``) →
    ``Segmentor(DilatedResNet(deep_stem=True, torchvision_dilation=True), ASPPHead(project_channels=C))``.

    Key map (``module.`` and a checkpoint container are unwrapped first)::

        pretrained.{conv1..3,bn1..3,layer1..4}   backbone.*
        head.aspp.b0.{0,1}                       sem_seg_head.aspp.branches.0 / .0.norm
        head.aspp.b{1,2,3}.block.{0,1}           sem_seg_head.aspp.branches.{1,2,3} / .norm
        head.aspp.b4.gap.{1,2}                   sem_seg_head.aspp.image_pool.1 / .1.norm
        head.aspp.project.{0,1}                  sem_seg_head.project.0 / .0.norm  (input channels reordered)
        head.block.{0,1} / head.block.4          sem_seg_head.bottleneck.0 / .0.norm, sem_seg_head.classifier
        auxlayer.block.{0,1} / .4                sem_seg_head.aux_head.conv / .conv.norm, .aux_head.classifier

    Args:
        backbone_only: convert ``pretrained.*`` only and drop ``head.*`` / ``auxlayer.*`` (an init for a
            model whose head differs).
    """
    state = unwrap_state_dict(state)
    if backbone_only:
        return _CIRKD_DEEPLABV3_BACKBONE.apply(state)
    result = _CIRKD_DEEPLABV3.apply(state)
    if _CIRKD_PROJECT in result.state:
        if "head.aspp.b0.0.weight" not in state:
            raise ConversionError(
                "cirkd_deeplabv3: head.aspp.project.0.weight is present but head.aspp.b0.0.weight is not: "
                "cannot tell the branch width to reorder the projection's input channels"
            )
        width = int(state["head.aspp.b0.0.weight"].shape[0])
        result.state[_CIRKD_PROJECT] = _reorder_cirkd_projection(result.state[_CIRKD_PROJECT], width)
        result.changed[_CIRKD_PROJECT] = (
            f"input channels reordered from CIRKD's (b0, b1, b2, b3, pool) to ASPPHead's (pool, 1×1, atrous ×3), "
            f"blocks of {width}"
        )
    return result

"""The machinery of the checkpoint converters (:mod:`apd.checkpoint.converters` holds the layouts): ordered
``(regex, target)`` renaming rules (:class:`KeyMap`), what a conversion returns, and the rule builders shared
by the ResNet-based layouts."""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence, Tuple

import torch

from .io import CheckpointError
from .keys import format_keys

__all__ = ["BN", "DROP", "WB", "ConversionError", "ConversionResult", "KeyMap",
           "conv_norm_rules", "resnet_block_rules", "stem_rules"]

BN = r"(?P<bn>weight|bias|running_mean|running_var|num_batches_tracked)"
WB = r"(?P<wb>weight|bias)"
DROP = None  # a rule's target: leave the source key out (listed in ConversionResult.dropped)


class ConversionError(CheckpointError):
    """A checkpoint does not have the layout a converter expects (the message lists the keys)."""


@dataclass
class ConversionResult:
    """Output of a converter (:mod:`apd.checkpoint.converters`).

    Attributes:
        state: the converted ``{target name: tensor}`` dict.
        renamed: ``{source name: target name}`` for every converted key.
        dropped: source keys deliberately left out (ImageNet classifiers, or the head with
            ``backbone_only``).
        source: the converter's name (e.g. "official_apd_pspnet (apd layout)").
        changed: ``{target name: what was done}`` for the tensors that are not copied as they are
            (CIRKD's projection weight, whose input channels are permuted).
    """

    state: Dict[str, torch.Tensor]
    renamed: Dict[str, str] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    source: str = ""
    changed: Dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- rules
class KeyMap:
    """Ordered ``(regex, target)`` rules; the first rule whose pattern fully matches a key applies.

    ``target`` is a ``re.Match.expand`` template or ``DROP`` (leave the key out, listed in ``dropped``).
    """

    def __init__(self, name: str, rules: Sequence[Tuple[str, object]], layout_hint: str):
        self.name = name
        self.rules = [(re.compile(pattern), target) for pattern, target in rules]
        self.layout_hint = layout_hint

    def apply(self, state: Mapping[str, torch.Tensor]) -> ConversionResult:
        out: Dict[str, torch.Tensor] = {}
        renamed: Dict[str, str] = {}
        dropped, unmapped = [], []
        sources_of: Dict[str, List[str]] = {}
        for key, value in state.items():
            for pattern, target in self.rules:
                match = pattern.fullmatch(key)
                if match is None:
                    continue
                if target is DROP:
                    dropped.append(key)
                else:
                    new_key = match.expand(target)
                    sources_of.setdefault(new_key, []).append(key)
                    out[new_key] = value
                    renamed[key] = new_key
                break
            else:
                unmapped.append(key)
        if unmapped:
            raise ConversionError(
                f"{self.name}: {len(unmapped)} checkpoint keys match no rule: {format_keys(unmapped, 200)}. "
                f"Expected layout: {self.layout_hint}"
            )
        clashes = {k: v for k, v in sources_of.items() if len(v) > 1}
        if clashes:
            desc = [f"{k} <- {v}" for k, v in clashes.items()]
            raise ConversionError(f"{self.name}: several source keys map to one name: {format_keys(desc, 40)}")
        return ConversionResult(state=out, renamed=renamed, dropped=dropped, source=self.name)


def resnet_block_rules(source_prefix: str) -> List[Tuple[str, object]]:
    """``layer{1..4}.{i}.{conv,bn}{1,2,3}`` / ``downsample.{0,1}``: identical names in the target."""
    p = re.escape(source_prefix)
    return [
        (p + r"layer(?P<s>[1-4])\.(?P<i>\d+)\.(?P<m>conv[123])\.weight", r"backbone.layer\g<s>.\g<i>.\g<m>.weight"),
        (p + r"layer(?P<s>[1-4])\.(?P<i>\d+)\.(?P<m>bn[123])\." + BN, r"backbone.layer\g<s>.\g<i>.\g<m>.\g<bn>"),
        (p + r"layer(?P<s>[1-4])\.(?P<i>\d+)\.downsample\.0\.weight", r"backbone.layer\g<s>.\g<i>.downsample.0.weight"),
        (p + r"layer(?P<s>[1-4])\.(?P<i>\d+)\.downsample\.1\." + BN, r"backbone.layer\g<s>.\g<i>.downsample.1.\g<bn>"),
    ]


def stem_rules(source_prefix: str, deep_stem: bool) -> List[Tuple[str, object]]:
    p = re.escape(source_prefix)
    convs = "123" if deep_stem else "1"
    return [
        (p + rf"(?P<m>conv[{convs}])\.weight", r"backbone.\g<m>.weight"),
        (p + rf"(?P<m>bn[{convs}])\." + BN, r"backbone.\g<m>.\g<bn>"),
    ]


def conv_norm_rules(conv: str, bn: str, target: str) -> List[Tuple[str, object]]:
    """A source conv (``{conv}.weight``, no bias) and its BatchNorm (``{bn}.*``), both regexes, onto one
    Detectron2 ``Conv2d`` with norm: ``{target}.weight`` and ``{target}.norm.*``."""
    return [(conv + r"\.weight", target + ".weight"), (bn + r"\." + BN, target + r".norm.\g<bn>")]

"""The protocol of a distillation term: what every term declares, and what the distillers read.

A term is a :class:`DistillationTerm` (an ``nn.Module``). It declares, and the rest of the code reads
nothing else:

- ``loss_keys``: the keys of the dict its ``forward`` returns (unweighted 0-dim tensors). The distiller
  multiplies each by ``loss_weights[key]`` (default 1.0) and by the warm-up factor, and sums them.
- ``second_optimizer_keys``: the subset of ``loss_keys`` that trains only
  :meth:`DistillationTerm.second_optimizer_parameters` (the config's ``adapter_optimizer``): never
  warmed up, and it must not reach the student. Example: APD's ``loss_adapt`` trains the teacher adapter.
- ``inputs``: what ``forward`` reads (:data:`INPUTS`). A task distiller provides some of them
  (segmentation: :data:`HEAD_OUTPUTS`; R-CNN: :data:`FPN_FEATURES`, :data:`CLASS_MAPS`, :data:`ROIS`)
  and computes the optional ones (class maps, ROIs) only when a term asks for them.
- :meth:`DistillationTerm.expected_features`: the channels it was configured with, as
  :class:`ExpectedFeature` records, checked against the *built* student and teacher when the distiller is
  built (:func:`check_expected_features`); a mismatch is one error naming the term, its key and both
  shapes.
- :meth:`DistillationTerm.second_optimizer_parameters`: the parameters stepped by the second optimiser
  (empty by default); the student's optimiser leaves them out.

``forward(student, teacher, targets)`` gets what the task distiller hands over: segmentation two
:class:`~apd.modeling.heads.outputs.SegHeadOutputs` and the B×H×W int64 label map; R-CNN two
:class:`~.detection_inputs.DetectionOutputs` and one :class:`~.detection_inputs.DetectionTargets`.
Terms never let gradient reach the teacher's outputs.

A built model is described to the check as a :data:`FeatureShapes` mapping, feature name →
:class:`FeatureShape`. The names: segmentation ``"feature"`` (``SegHeadOutputs.feature``); R-CNN the FPN
level names (``"p2"`` …), ``"roi_features"`` (box-head vectors) and ``"roi_scores"`` (box classifier),
the last two only for a non-cascade ``StandardROIHeads``; both tasks ``"classes"`` (K; foreground
classes for R-CNNs).
"""
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ...errors import ConfigMismatchError, ConfigValueError

__all__ = [
    "CLASS_MAPS",
    "FPN_FEATURES",
    "HEAD_OUTPUTS",
    "INPUTS",
    "ROIS",
    "DistillationTerm",
    "ExpectedFeature",
    "FeatureShape",
    "FeatureShapes",
    "TermCompatibilityError",
    "check_expected_features",
    "check_term_declaration",
]

HEAD_OUTPUTS = "head_outputs"  # segmentation: SegHeadOutputs (feature, logits) of both models
FPN_FEATURES = "fpn_features"  # R-CNN: DetectionOutputs.features of both models
CLASS_MAPS = "class_maps"  # R-CNN: DetectionTargets.class_maps (ground-truth classes per pixel)
ROIS = "rois"  # R-CNN: box-head outputs/scores on the student's sampled proposals, their gt_classes
INPUTS = (HEAD_OUTPUTS, FPN_FEATURES, CLASS_MAPS, ROIS)


class TermCompatibilityError(ConfigMismatchError):
    """A term does not fit the built student/teacher (channels, levels, classes, inputs)."""


@dataclass(frozen=True)
class FeatureShape:
    """One feature of a built model, for the check: its channels and how its shape is written.

    Attributes:
        channels: C (or K for ``"classes"``), None when the model does not say.
        layout: the shape with ``C`` for the channels, e.g. ``"B×C×h×w"``, ``"R×C"``, ``"K=C"``.
    """

    channels: Optional[int]
    layout: str = "B×C×h×w"

    def format(self, channels: Optional[int] = None) -> str:
        c = self.channels if channels is None else channels
        return self.layout.replace("C", "?" if c is None else str(c))


FeatureShapes = Mapping[str, FeatureShape]


@dataclass(frozen=True)
class ExpectedFeature:
    """What a term reads of one model, as it was configured.

    Attributes:
        model: ``"student"`` or ``"teacher"``.
        feature: a feature name of that model (module docstring).
        key: the term's constructor keyword that set ``channels`` (named in the error), or None.
        channels: the channels the term was built for, or None (the feature must only exist).
    """

    model: str
    feature: str
    key: Optional[str] = None
    channels: Optional[int] = None


class DistillationTerm(nn.Module):
    """Base class of every distillation term (module docstring: the protocol).

    Subclasses set ``loss_keys`` (non-empty), ``inputs`` and, if they train parameters with a second
    optimiser, ``second_optimizer_keys`` and :meth:`second_optimizer_parameters`; they override
    :meth:`expected_features` when they were built for given channels or classes.
    """

    loss_keys: Tuple[str, ...] = ()
    second_optimizer_keys: Tuple[str, ...] = ()
    inputs: FrozenSet[str] = frozenset()

    def expected_features(self) -> List[ExpectedFeature]:
        """The student/teacher features this term was configured for (none by default)."""
        return []

    def second_optimizer_parameters(self) -> List[nn.Parameter]:
        """Parameters trained by ``second_optimizer_keys`` with the second optimiser (none by default)."""
        return []

    def forward(self, student, teacher, targets) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


def check_term_declaration(name: str, term: nn.Module, provided: Iterable[str], distiller: str) -> None:
    """Raise ``ConfigValueError`` / :class:`TermCompatibilityError` when ``term`` (``distill_heads[name]``) does not
    follow the protocol or reads an input the distiller does not provide."""
    where = f"distill_heads['{name}'] ({type(term).__name__})"
    if not isinstance(term, DistillationTerm):
        raise ConfigValueError(f"{where} is not a DistillationTerm (apd.modeling.distill.protocol): a term declares "
                        "loss_keys, second_optimizer_keys, inputs and expected_features()")
    if not term.loss_keys:
        raise ConfigValueError(f"{where} declares no loss_keys")
    outside = sorted(set(term.second_optimizer_keys) - set(term.loss_keys))
    if outside:
        raise ConfigValueError(f"{where}: second_optimizer_keys {outside} are not in its loss_keys {list(term.loss_keys)}")
    unknown = sorted(set(term.inputs) - set(INPUTS))
    if unknown:
        raise ConfigValueError(f"{where} reads unknown inputs {unknown}; the inputs are {list(INPUTS)}")
    missing = sorted(set(term.inputs) - set(provided))
    if missing:
        raise TermCompatibilityError(f"{where} reads {missing}, which {distiller} does not provide "
                                     f"(it provides {sorted(provided)})")


def check_expected_features(name: str, term: DistillationTerm, shapes: Mapping[str, FeatureShapes]) -> None:
    """Compare ``term.expected_features()`` with the built models' features (``shapes``: ``"student"`` /
    ``"teacher"`` → :data:`FeatureShapes`); raise :class:`TermCompatibilityError` naming the term, its key
    and both shapes at the first mismatch."""
    where = f"distill_heads['{name}'] ({type(term).__name__})"
    for expected in term.expected_features():
        features = shapes[expected.model]
        actual = features.get(expected.feature)
        if actual is None:
            key = f" ({expected.key})" if expected.key else ""
            raise TermCompatibilityError(
                f"{where} reads the {expected.model}'s '{expected.feature}'{key}, which the built {expected.model} "
                f"does not have; it has {sorted(features)}"
            )
        if expected.channels is None or actual.channels is None or int(expected.channels) == int(actual.channels):
            continue
        raise TermCompatibilityError(
            f"{where}: {expected.key}={expected.channels} expects the {expected.model}'s '{expected.feature}' as "
            f"{actual.format(expected.channels)}, but the built {expected.model}'s is {actual.format()}"
        )

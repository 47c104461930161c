"""Helpers for the tests: tiny models and one runner for the project's scripts.

``toy_segmentor`` builds a real Detectron2 ``SemanticSegmentor`` whose backbone and head are a few
small convolutions (the ``ToyStudent``/``ToyTeacher`` idea of mmrazor's tests); its head follows the
``layers()``/``losses()`` contract of ``apd.modeling.heads``.

``run_script`` / ``popen_script`` run a script such as ``train_net.py`` in a subprocess with a chosen
dataset root and a capped number of BLAS/OpenMP threads (``script_env``): several test runs share a few
cores, and oversubscribed OpenMP threads make a training step ~10× slower. ``TINY_TRAIN_OVERRIDES``
shrinks a demo config's training to CPU-test size.
"""
import importlib.util
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, SemanticSegmentor
from torch import nn

from apd.modeling.heads.outputs import SegHeadOutputs

__all__ = [
    "ToyBackbone",
    "ToySegHead",
    "toy_segmentor",
    "toy_batch",
    "TINY_TRAIN_OVERRIDES",
    "script_env",
    "run_script",
    "popen_script",
    "load_script",
]

# A demo config's training at test size: batch 2, 64×128 crops, no worker processes, log every step.
TINY_TRAIN_OVERRIDES = (
    "dataloader.train.total_batch_size=2",
    "dataloader.train.mapper.augmentations.crop_size=[64,128]",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "train.log_period=1",
)


class ToyBackbone(Backbone):
    """Two stride-2 convs: one feature ``res5`` at stride 4 with ``channels`` channels."""

    def __init__(self, channels: int = 8, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self._channels = channels

    def forward(self, x):
        return {"res5": self.conv2(F.relu(self.bn1(self.conv1(x))))}

    def output_shape(self):
        return {"res5": ShapeSpec(channels=self._channels, stride=4)}


class ToySegHead(nn.Module):
    """3×3 conv → ReLU → Dropout2d = feature; 1×1 conv = logits (stride 4). Follows the head contract."""

    def __init__(self, in_channels: int = 8, channels: int = 8, num_classes: int = 3, ignore_value: int = 255,
                 dropout: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.common_stride = 4
        self.feature_channels = channels
        self.loss_weight = 1.0
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout)
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    def layers(self, features: Dict[str, torch.Tensor]) -> SegHeadOutputs:
        feature = self.dropout(F.relu(self.conv(features["res5"])))
        return SegHeadOutputs(feature=feature, logits=self.predictor(feature), aux_logits=None)

    def losses(self, outputs: SegHeadOutputs, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = F.interpolate(outputs.logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        return {"loss_sem_seg": F.cross_entropy(logits, targets, ignore_index=self.ignore_value)}

    def forward(self, features, targets=None):
        out = self.layers(features)
        if self.training:
            return None, self.losses(out, targets)
        return F.interpolate(out.logits, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}


def toy_segmentor(num_classes: int = 3, channels: int = 8, seed: Optional[int] = None) -> SemanticSegmentor:
    """A d2 ``SemanticSegmentor`` with ToyBackbone + ToySegHead (ImageNet RGB statistics)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = SemanticSegmentor(
        backbone=ToyBackbone(channels),
        sem_seg_head=ToySegHead(channels, channels, num_classes),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    model.input_format = "RGB"
    return model


def toy_batch(batch_size: int = 2, height: int = 32, width: int = 32, num_classes: int = 3,
              seed: int = 0, ignore_fraction: float = 0.1) -> List[dict]:
    """Detectron2-format inputs: uint8-valued float images 3×H×W and int64 labels with some 255s."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, height, width), generator=g).float()
        sem_seg = torch.randint(0, num_classes, (height, width), generator=g)
        sem_seg[torch.rand(height, width, generator=g) < ignore_fraction] = 255
        out.append({"image": image, "sem_seg": sem_seg, "height": height, "width": width})
    return out


# ------------------------------------------------------------------------------ script runner
def load_script(path: str, name: Optional[str] = None):
    """Import the Python file ``path`` (a script under tools/, benchmarks/ or datasets/, folders that
    are not packages) as a new module named ``name`` (default: the file's stem)."""
    name = name or os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_env(datasets_root=None, threads: int = 1) -> Dict[str, str]:
    """This process's environment with ``DETECTRON2_DATASETS`` (when given), ``threads`` OpenMP/MKL
    threads and unbuffered output."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    if datasets_root is not None:
        env["DETECTRON2_DATASETS"] = str(datasets_root)
    return env


def run_script(script: str, args: Sequence[str], *, cwd: str, datasets_root=None, threads: int = 1,
               check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python script args`` in ``cwd``; returns the CompletedProcess (text ``stdout``/``stderr``).

    Raises:
        AssertionError: ``check`` and a non-zero exit status; the message holds the ends of both streams.
    """
    proc = subprocess.run([sys.executable, script, *args], cwd=cwd, env=script_env(datasets_root, threads),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def popen_script(script: str, args: Sequence[str], *, cwd: str, log_file, datasets_root=None,
                 threads: int = 1) -> subprocess.Popen:
    """``python script args`` in the background, stdout and stderr into the open file ``log_file``."""
    return subprocess.Popen([sys.executable, script, *args], cwd=cwd, env=script_env(datasets_root, threads),
                            stdout=log_file, stderr=subprocess.STDOUT)

#!/usr/bin/env python
"""Export the student of a (distillation) run: a student-only checkpoint, TorchScript and ONNX.

    python tools/export_student.py --config-file configs/apd_pspnet_r18.py \\
        --checkpoint output/apd_pspnet_r18/model_final.pth --output-dir exported/ \\
        [--format checkpoint,torchscript,onnx] [--height 1024 --width 2048] [--verify] [key=value ...]

Writes into --output-dir:
  model_student.pth  {"model": the student's state dict, "export_info": {...}}: exactly the keys of the
                     student's own config (no teacher, no distillation heads, no adapters). It loads with
                     no missing key into the plain student config, e.g. configs/cityscapes/pspnet_r18.py:
                     ``train_net.py --config-file configs/cityscapes/pspnet_r18.py --eval-only
                     train.init_checkpoint=exported/model_student.pth``. R-CNN students: GeneralizedRCNN keys.
  student.ts         TorchScript (traced): image B×3×H×W float (0-255, the student's input_format, RGB for
                     this project's configs) → logits B×K×H×W. Any batch size; H×W fixed to --height/--width.
  student.onnx       ONNX (opset --opset), input "image", output "logits", dynamic batch, fixed H×W.
                     Needs the `onnx` package (pip install onnx onnxruntime, the `export` extra).

The traced graph is normalisation + backbone + head + bilinear upsampling to the input size: the
student's whole-image inference. A sliding-window / flip test protocol averages these logits over
crops outside the graph. Segmentation students only for torchscript/onnx (R-CNN: checkpoint only;
Detectron2's tools/deploy/export_model.py handles R-CNN tracing). --verify compares each export with
the in-framework student on one random image (tolerance: |diff| <= 1e-3 + 1e-3·|logit|).
"""
import argparse
import contextlib
import os
import sys
import warnings
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ("checkpoint", "torchscript", "onnx")
CHECKPOINT_NAME = "model_student.pth"
TORCHSCRIPT_NAME = "student.ts"
ONNX_NAME = "student.onnx"
# Exported vs in-framework logits: |a - b| <= ATOL + RTOL·|b| (float32, different kernels/summation order).
ATOL = 1e-3
RTOL = 1e-3


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config-file", required=True, help="the run's config (distiller or plain model)")
    parser.add_argument("--checkpoint", required=True, help="the run's checkpoint, e.g. output/.../model_final.pth")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--format", default="checkpoint,torchscript,onnx",
                        help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--height", type=int, default=1024, help="input height of the traced graphs")
    parser.add_argument("--width", type=int, default=2048, help="input width of the traced graphs")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--device", default="cpu", help="device to trace on (cpu, cuda)")
    parser.add_argument("--verify", action="store_true",
                        help="run the exported models and the in-framework student on one random image and compare")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return parser


def parse_formats(text: str) -> List[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"--format {text!r}: unknown format(s) {unknown}; choose from {list(FORMATS)}")
    return formats


@contextlib.contextmanager
def _quiet_tracing():
    """Silence the warnings every trace of this graph raises: shape reads become constants (H×W is
    fixed by design) and torch's deprecation notices for torch.jit / the TorchScript ONNX exporter."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_checkpoint(state: Dict, path: str, info: Dict) -> str:
    """Write ``{"model": state, "export_info": info}`` atomically."""
    from apd.checkpoint import atomic_torch_save

    atomic_torch_save({"model": state, "export_info": info}, path)
    return path


def export_torchscript(student, example, path: str) -> str:
    """Trace the student's image → logits graph (:class:`SegmentationExportModel`) at ``example``'s size."""
    import torch

    from apd.export import SegmentationExportModel

    wrapper = SegmentationExportModel(student)
    with torch.no_grad(), _quiet_tracing():
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    traced.save(path)
    return path


def export_onnx(student, example, path: str, opset: int) -> str:
    """ONNX of the image → logits graph at ``example``'s size (adaptive pools as matrix products)."""
    import torch

    from apd.export import SegmentationExportModel

    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as e:
        raise ImportError("ONNX export needs the `onnx` package: pip install onnx onnxruntime") from e
    wrapper = SegmentationExportModel(student, onnx_compatible=True)
    with torch.no_grad(), _quiet_tracing():
        # TorchScript-based exporter (dynamo=False): it keeps Resize(align_corners) and BN folding and
        # needs no onnxscript.
        torch.onnx.export(
            wrapper, (example,), path, dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


def reference_logits(student, image):
    """The in-framework student's logits (Detectron2 forward, whole image) for a B×3×H×W image."""
    import torch

    saved = student.sliding_window
    student.sliding_window = None
    try:
        with torch.no_grad():
            outputs = student([{"image": x} for x in image])
    finally:
        student.sliding_window = saved
    return torch.stack([o["sem_seg"] for o in outputs])


def verify(student, paths: Dict[str, str], height: int, width: int, device: str) -> Dict[str, float]:
    """Max |exported − in-framework| logits per exported graph; raises AssertionError above tolerance."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 3, height, width, generator=generator) * 255).to(device)
    expected = reference_logits(student, image).cpu()
    outputs = {}
    if "torchscript" in paths:
        with torch.no_grad(), _quiet_tracing():
            scripted = torch.jit.load(paths["torchscript"], map_location=device)
            outputs["torchscript"] = scripted(image).cpu()
    if "onnx" in paths:
        import onnxruntime

        session = onnxruntime.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
        outputs["onnx"] = torch.from_numpy(session.run(None, {"image": image.cpu().numpy().astype(np.float32)})[0])
    diffs = {}
    for name, got in outputs.items():
        diffs[name] = float((got - expected).abs().max())
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL, msg=lambda m, n=name: f"{n} export: {m}")
    return diffs


def run(args) -> Dict[str, str]:
    """Export as ``args`` asks; returns {format: written path}."""
    import torch
    from detectron2.config import instantiate

    import apd  # noqa: F401  (registers everything the configs use)
    from apd.config import load_config
    from apd.export import read_student_state, student_config
    from apd.modeling.meta_arch.segmentor import Segmentor

    formats = parse_formats(args.format)
    cfg = load_config(args.config_file, args.opts)
    spec = student_config(cfg.model)
    traced_formats = [f for f in formats if f != "checkpoint"]
    target = spec.target
    if traced_formats and not (isinstance(target, type) and issubclass(target, Segmentor)):
        name = getattr(target, "__name__", str(target))
        raise ValueError(
            f"--format {','.join(traced_formats)}: the student is a {name}; TorchScript/ONNX "
            "export supports segmentation students (apd Segmentor). Use --format checkpoint."
        )
    student = instantiate(spec.node)
    state = read_student_state(args.checkpoint, student, spec.prefix)
    student.load_state_dict(state, strict=True)
    student.to(args.device).eval()

    os.makedirs(args.output_dir, exist_ok=True)
    paths = {}
    if "checkpoint" in formats:
        info = {
            "config_file": os.path.abspath(args.config_file),
            "source_checkpoint": os.path.abspath(args.checkpoint),
            "distiller": spec.distiller or "",
            "student": f"{type(student).__module__}.{type(student).__name__}",
        }
        paths["checkpoint"] = export_checkpoint(state, os.path.join(args.output_dir, CHECKPOINT_NAME), info)
    example = torch.zeros(1, 3, args.height, args.width, device=args.device)
    if "torchscript" in formats:
        paths["torchscript"] = export_torchscript(student, example, os.path.join(args.output_dir, TORCHSCRIPT_NAME))
    if "onnx" in formats:
        paths["onnx"] = export_onnx(student, example, os.path.join(args.output_dir, ONNX_NAME), args.opset)
    for name, path in paths.items():
        print(f"[export_student] {name}: {path}")
    if args.verify and traced_formats:
        diffs = verify(student, paths, args.height, args.width, args.device)
        for name, diff in diffs.items():
            print(f"[export_student] {name}: max |exported - in-framework| = {diff:.3g} "
                  f"(tolerance {ATOL} + {RTOL}·|logit|)")
    return paths


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    from apd.utils.cli import run_tool

    return run_tool("export_student.py", run, args)


if __name__ == "__main__":
    sys.exit(main())

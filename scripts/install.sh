#!/usr/bin/env bash
# One-command install: creates .venv with torch, detectron2 and this project (editable).
# Idempotent: when everything is already installed it only checks imports and exits (a few seconds).
#   bash scripts/install.sh            # install / check
#   APD_VENV=/path bash scripts/install.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${APD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
D2_GIT="git+https://github.com/facebookresearch/detectron2.git"
D2_FALLBACK="sal-detectron2==0.7.2"   # same Python sources as detectron2, see README "Install"
STAMP="$VENV/.apd-install-stamp"

log() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check -q)

# Fast path: nothing changed since the last successful install.
want_stamp="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/install.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] \
   && "$VPY" -c "import torch, torchvision, detectron2, apd, cityscapesscripts, cv2, onnx, onnxruntime, sklearn" 2>/dev/null; then
  log "already installed ($VENV); nothing to do"
  exit 0
fi

have() { "$VPY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('$1') == '$2' else 1)" 2>/dev/null; }

if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
  log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# detectron2's runtime dependencies (also listed in pyproject.toml).
"${PIP[@]}" install "setuptools<81" wheel fvcore iopath "omegaconf>=2.1,<2.4" hydra-core pycocotools \
  cloudpickle tabulate termcolor yacs matplotlib tensorboard Pillow

if ! "$VPY" -c "import detectron2" 2>/dev/null; then
  log "installing detectron2 from the official source"
  if timeout "${APD_D2_GIT_TIMEOUT:-120}" "${PIP[@]}" install --no-build-isolation "$D2_GIT" 2>/dev/null; then
    log "official detectron2 installed"
  else
    log "official source unreachable; falling back to PyPI $D2_FALLBACK (pure-Python sources, no _C ops)"
    tmp="$(mktemp -d)"
    "${PIP[@]}" download --no-deps --only-binary=:all: --python-version 3.10 -d "$tmp" "$D2_FALLBACK"
    whl="$(ls "$tmp"/sal_detectron2-*.whl | head -n1)"
    cp "$whl" "$tmp/sal_detectron2-0.7.2-py3-none-any.whl"
    "${PIP[@]}" install --no-deps "$tmp/sal_detectron2-0.7.2-py3-none-any.whl"
    rm -rf "$tmp"
  fi
fi

log "installing the project (editable), test, export (ONNX) and visualisation (t-SNE) tools"
"${PIP[@]}" install --no-build-isolation -e "$ROOT[test,export,vis]"

"$VPY" -c "import torch, torchvision, detectron2, apd, cityscapesscripts, cv2; print('[install] ok: torch', torch.__version__, '| detectron2', detectron2.__version__)"
echo "$want_stamp" > "$STAMP"

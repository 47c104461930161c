#!/usr/bin/env bash
# The GPU session's checks in ONE call of under 8 minutes on one GPU, in priority order, each under its own
# time limit (a step that runs out is cut, the next one starts), results collected as they come:
#   psp713_b8 / psp713_b2  PSPNet R101 → R18 at the anchor's setting (crop 713, batch 8 and 2, fp32): step
#                          ratios, per-mode step memory (--memory-inline), profiles of the KD and APD terms
#   deeplab_b8             DeepLabV3 R101 → R18 at 512×1024, batch 8: the same
#   infer_fp32 / infer_bf16  student vs teacher at 1025×2049, batch 1: network alone and whole call,
#                          with the pre- and post-processing timed apart (fp32: PSPNet and DeepLabV3; bf16: PSPNet)
#   mask_rcnn_b2           Mask R-CNN R101-FPN → R50-FPN at 800×1333, batch 2
#   compiled_713_b8        train.compile (inductor) against eager, PSPNet 713 batch 8 (compiles in the warm-up)
#   compiled_rest          the same at 713 batch 2 and DeepLabV3 512×1024 batch 8, with the time left
#
#   bash benchmarks/gpu_checks.sh OUT_DIR
#   DRY_RUN=1 bash benchmarks/gpu_checks.sh OUT_DIR   # CPU, tiny sizes, 1 round, aot_eager: checks it runs
#
# Needs: detectron2 + apd importable by PYTHON (default python3; .venv/bin/python if present). Writes
# OUT_DIR/gpu_checks.log, raw JSON per step in OUT_DIR/res (RES_DIR), and OUT_DIR/results.tar.gz, refreshed
# after every step. ONLY="psp713_b8 infer_fp32" runs just those steps. Copy res/ to benchmarks/results/DATE_gpu/.
set -u
OUT_DIR=${1:?usage: gpu_checks.sh OUT_DIR}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
RES=${RES_DIR:-$OUT_DIR/res}
mkdir -p "$OUT_DIR" "$RES"
LOG="$OUT_DIR/gpu_checks.log"

if [ "${DRY_RUN:-0}" = 1 ]; then
    DEV=cpu; CROP=65; B8=2; SEG_H=64; SEG_W=128; INF_H=129; INF_W=257; RC_H=256; RC_W=320
    ROUNDS="--warmup 0 --repeats 1 --threads 1"; SHORT=$ROUNDS; CROUNDS="--warmup 1 --repeats 1 --threads 1"
    BACKEND=aot_eager; SCALE=20  # time limits × SCALE on 2 shared CPU cores
else
    DEV=cuda; CROP=713; B8=8; SEG_H=512; SEG_W=1024; INF_H=1025; INF_W=2049; RC_H=800; RC_W=1333
    ROUNDS="--warmup 3 --repeats 10 --threads 8"; SHORT="--warmup 2 --repeats 8 --threads 8"
    CROUNDS="--warmup 2 --repeats 6 --threads 8"
    BACKEND=inductor; SCALE=1
fi

step() {  # step NAME LIMIT_S CMD...: run, log, never stop the whole script
    local name=$1 limit=$(($2 * SCALE)); shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
    echo "=== [$name] $(date -u +%FT%TZ) limit ${limit}s: $*" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== [$name] exit $? after $((SECONDS - start)) s" | tee -a "$LOG"
    tar -czf "$OUT_DIR/results.tar.gz" -C "$RES" . 2>/dev/null
}

{
    date -u
    [ "$DEV" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import torch, detectron2; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', 'detectron2', detectron2.__version__)"
    nproc
} >>"$LOG" 2>&1

COST="$PY benchmarks/cost.py --device $DEV"
SEG_ITEMS=student,teacher_fwd,floor,kd,apd,kd_term,apd_term
INF_ITEMS=pre_student,net_student,post_student,infer_student,pre_teacher,net_teacher,post_teacher,infer_teacher
step psp713_b8 60 $COST $ROUNDS --configs pspnet --height $CROP --width $CROP --batch $B8 --items $SEG_ITEMS \
    --memory-inline --profile kd_term,apd_term \
    --json "$RES/psp713_b8.json"
step psp713_b2 35 $COST $ROUNDS --configs pspnet --height $CROP --width $CROP --batch 2 --items $SEG_ITEMS \
    --memory-inline --json "$RES/psp713_b2.json"
step deeplab_b8 55 $COST $SHORT --configs deeplab --height $SEG_H --width $SEG_W --batch $B8 --items $SEG_ITEMS \
    --memory-inline --json "$RES/deeplab512x1024_b8.json"
step infer_fp32 50 $COST $ROUNDS --configs pspnet,deeplab --height $INF_H --width $INF_W --batch 1 --no-memory \
    --items $INF_ITEMS --json "$RES/infer_fp32.json"
step infer_bf16 30 $COST $ROUNDS --configs pspnet --height $INF_H --width $INF_W --batch 1 --no-memory \
    --items $INF_ITEMS --amp bf16 --json "$RES/infer_bf16.json"
step mask_rcnn_b2 55 $COST $ROUNDS --configs mask_rcnn --height $RC_H --width $RC_W --batch 2 --memory-inline \
    --items student,teacher_fwd,floor,kd,apd,apd_term,infer_student,infer_teacher --json "$RES/mask_rcnn_b2.json"
step compiled_713_b8 100 $COST $CROUNDS --configs pspnet --height $CROP --width $CROP --batch $B8 --no-memory \
    --items student,floor,kd,apd --variants default,compiled --compile-backend $BACKEND \
    --json "$RES/compiled_psp713_b8.json"
step compiled_rest 65 bash -c "$COST $CROUNDS --configs pspnet --height $CROP --width $CROP --batch 2 --no-memory \
    --items student,floor,kd,apd --variants default,compiled --compile-backend $BACKEND \
    --json '$RES/compiled_psp713_b2.json' && $COST $CROUNDS --configs deeplab --height $SEG_H --width $SEG_W \
    --batch $B8 --no-memory --items student,floor,kd,apd --variants default,compiled --compile-backend $BACKEND \
    --json '$RES/compiled_deeplab_b8.json'"
echo "=== done $(date -u +%FT%TZ)" | tee -a "$LOG"

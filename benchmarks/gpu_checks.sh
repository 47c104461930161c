#!/usr/bin/env bash
# The GPU checks, in priority order, each under its own time limit, results collected as they come:
#   1. cost.py at the official anchor's setting (PSPNet R101 → R18, crop 713, batch 8 and 2; fp32),
#   2. cost.py DeepLabV3 R101 → R18 at 512×1024, batch 8, and Mask R-CNN R101 → R50 at 800×1333, batch 2,
#   3. student vs teacher inference at 1025×2049, batch 1, fp32 and bf16 (shared/PERFORMANCE.md's setting),
#   4. AMP: the APD step under fp16 (GradScaler) and bf16, and the demo APD run trained twice on CUDA
#      (fp32 and fp16 autocast, same seed) to its final mIoU.
#
#   bash benchmarks/gpu_checks.sh OUT_DIR [TEACHER_WEIGHTS]
#
# Needs: a CUDA device, detectron2 + apd importable (PYTHON, default python3), the generated demo data under
# DETECTRON2_DATASETS (default datasets/demo) and the demo teacher's weights (default
# output/demo/teacher/model_final.pth) for step 4. Writes OUT_DIR/gpu_checks.log and OUT_DIR/results.tar.gz
# (JSON of every cost.py run, metrics.json of the AMP runs; raw files in RES_DIR, default OUT_DIR/res),
# refreshed after every step.
set -u
OUT_DIR=${1:?usage: gpu_checks.sh OUT_DIR [TEACHER_WEIGHTS]}
TEACHER=${2:-output/demo/teacher/model_final.pth}
PY=${PYTHON:-python3}
export DETECTRON2_DATASETS=${DETECTRON2_DATASETS:-datasets/demo}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
RES=${RES_DIR:-$OUT_DIR/res}  # raw results (the tarball holds them all)
mkdir -p "$OUT_DIR" "$RES"
LOG="$OUT_DIR/gpu_checks.log"

step() {  # step NAME LIMIT_S CMD...: run, log, never stop the whole script; ONLY="a b" runs just those
    local name=$1 limit=$2; shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
    echo "=== [$name] $(date -u +%FT%TZ) limit ${limit}s: $*" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== [$name] exit $? after $((SECONDS - start)) s" | tee -a "$LOG"
    tar -czf "$OUT_DIR/results.tar.gz" -C "$RES" . 2>/dev/null
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import torch, detectron2; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(), 'detectron2', detectron2.__version__)"
    nproc
} >>"$LOG" 2>&1

COST="$PY benchmarks/cost.py --device cuda --warmup 3 --repeats 10 --threads 8"
step pspnet713_b8 150 $COST --configs pspnet --height 713 --width 713 --batch 8 --profile apd_term,kd_term \
    --json "$RES/pspnet713_b8.json"
step deeplab_b8 150 $COST --configs deeplab --batch 8 --json "$RES/deeplab512x1024_b8.json"
step mask_rcnn_b2 150 $COST --configs mask_rcnn --batch 2 --json "$RES/mask_rcnn_b2.json"
step pspnet713_b2 60 $COST --configs pspnet --height 713 --width 713 --batch 2 --no-memory \
    --json "$RES/pspnet713_b2.json"
for amp in off bf16; do
    step "infer_$amp" 90 $COST --configs pspnet,deeplab --height 1025 --width 2049 --batch 1 --no-memory \
        --items infer_student,infer_teacher --amp $amp --json "$RES/infer1025x2049_$amp.json"
done
for amp in fp16 bf16; do
    step "pspnet713_b8_$amp" 60 $COST --configs pspnet --height 713 --width 713 --batch 8 --no-memory \
        --items student,teacher_fwd,floor,kd,apd --amp $amp --json "$RES/pspnet713_b8_$amp.json"
done
for amp in False True; do
    run="$RES/demo_apd_amp_$amp"
    step "demo_apd_amp_$amp" 120 $PY train_net.py --config-file configs/demo/apd_pspnet_r18_demo.py \
        model.teacher_weights="$TEACHER" train.output_dir="$run" train.amp.enabled=$amp train.device=cuda \
        dataloader.train.num_workers=4
    # keep the metrics only (checkpoints are large and not needed)
    find "$run" -name '*.pth' -delete 2>/dev/null
    [ -d "$run" ] && tar -czf "$OUT_DIR/results.tar.gz" -C "$RES" . 2>/dev/null
done
echo "=== done $(date -u +%FT%TZ)" | tee -a "$LOG"

#!/usr/bin/env bash
# One call on a GPU machine: what fpar does there, in a few minutes, everything logged.
#
#   OUT=/some/folder bash scripts/gpu_check.sh
#
# Steps (each under `timeout`; a failed step is reported and the next one runs; the whole script
# stays within BUDGET seconds, default 460):
#   env    nvidia-smi, python/torch/CUDA/cuDNN/Lightning/OpenCV versions, missing dependencies
#   bench  fpar bench --device cuda, quick (all rows), then --full (eval, train, flow rows)
#   tvl1   fpar's batched TV-L1 on 320x240 frame pairs: pairs/s at batch 16 and 32
#   train  the synthetic demo recipe's RGB config for a few epochs on a generated dataset, while
#          nvidia-smi samples utilisation and memory every second; prints the mean utilisation
#   tests  the parity and TV-L1 tests (they compute on the CPU: they take no device argument)
# Environment: OUT (results folder; default a new temporary one), PYTHON (default python3),
# DEVICE (default cuda; DEVICE=cpu runs the same steps on the CPU, to try the script without a
# GPU), STEPS (comma-separated subset of the steps above, default all), BUDGET (seconds).
# Output in $OUT: gpu_check.log (everything printed), bench_quick.json, bench_full.json,
# gpu_util.csv. The dataset and the training run go to a temporary folder, removed at the end.

set -u
OUT=${OUT:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-env,bench,tvl1,train,tests}
BUDGET=${BUDGET:-460}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)  # the dataset and the training run: large, not worth bringing back
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
cd "$(dirname "$0")/.."

SECONDS=0
declare -a SUMMARY=()

wanted() { [[ ",$STEPS," == *",$1,"* ]]; }

# step NAME LIMIT COMMAND...: run COMMAND under timeout (LIMIT seconds, or what is left of the
# budget if less), print how it ended, carry on whatever happened.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if ((left < 15)); then
        echo "=== $name: skipped, the budget of ${BUDGET}s is spent"
        SUMMARY+=("$name: skipped (budget)")
        return 0
    fi
    ((limit > left)) && limit=$left
    echo
    echo "=== $name (limit ${limit}s, ${SECONDS}s so far) $(date -u +%H:%M:%S)"
    local start=$SECONDS
    if declare -F "$1" >/dev/null; then  # a function of this script: timeout needs a process
        timeout -k 10 "$limit" bash -c '"$@"' "$name" "$@"
    else
        timeout -k 10 "$limit" "$@"
    fi
    local rc=$?
    local took=$((SECONDS - start))
    case $rc in
        0) SUMMARY+=("$name: ok (${took}s)") ;;
        124 | 137) SUMMARY+=("$name: TIMED OUT after ${took}s") ;;
        *) SUMMARY+=("$name: FAILED rc=$rc (${took}s)") ;;
    esac
    echo "=== $name: rc=$rc in ${took}s"
}

check_env() {
    if [[ $DEVICE == cuda ]]; then nvidia-smi || echo "nvidia-smi failed"; fi
    "$PYTHON" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
missing = []
for name in ("torch", "lightning", "torchmetrics", "cv2", "PIL", "matplotlib", "safetensors", "pydantic",
             "filelock", "yaml", "tqdm", "numpy", "fpar"):
    try:
        module = importlib.import_module(name)
        print(f"{name:12s} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # any import failure is worth reporting, not only ImportError
        missing.append(name)
        print(f"{name:12s} MISSING ({type(exc).__name__}: {exc})")
import torch
print("cuda available", torch.cuda.is_available(), "| torch cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
import cv2
print("opencv contrib (cv2.optflow):", hasattr(cv2, "optflow"))
print("MISSING:", ", ".join(missing) if missing else "nothing")
EOF
}

tvl1_rate() {
    "$PYTHON" - "$DEVICE" <<'EOF'
import sys, time
import cv2, numpy as np, torch
from fpar.prepare.tvl1 import tvl1_flow

device = sys.argv[1]
rng = np.random.default_rng(0)
texture = sum(w * cv2.GaussianBlur(rng.standard_normal((280, 360)).astype(np.float32), (0, 0), s)
              for s, w in ((1, 0.3), (3, 0.5), (8, 1.0)))
texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255
view = lambda dx, dy: cv2.warpAffine(texture, np.float32([[1, 0, 20 - dx], [0, 1, 20 - dy]]), (320, 240),
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP).astype(np.uint8)
first, second = view(0, 0), view(1.6, -0.7)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
for batch in (16, 32):
    a = torch.from_numpy(np.stack([first] * batch)).to(device)
    b = torch.from_numpy(np.stack([second] * batch)).to(device)
    flow = tvl1_flow(a, b)  # warm-up
    sync()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        flow = tvl1_flow(a, b)
        sync()
        times.append(time.perf_counter() - start)
    median_x = float(np.median(flow[0, ..., 0].cpu().numpy()))
    print(f"TV-L1 320x240 on {device}, batch {batch}: {batch / min(times):.1f} pairs/s "
          f"(best of 3: {min(times):.3f}s per batch; median flow x {median_x:.2f}px, true 1.60)")
EOF
}

train_with_sampling() {
    local data="$WORK/synth" samples="$OUT/gpu_util.csv" sampler=""
    "$PYTHON" -m fpar synth "$data" --subjects 4 --classes 6 --videos-per-class 2 --frames 16 || return 1
    if [[ $DEVICE == cuda ]]; then
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 >"$samples" &
        sampler=$!
    fi
    local accelerator=gpu
    [[ $DEVICE == cuda ]] || accelerator=cpu
    "$PYTHON" -m fpar train synthetic/rgb-attention_r18_8f_stage2 --data "$data" --out "$WORK/runs" --no-progress \
        trainer.epochs="${EPOCHS:-10}" trainer.accelerator=$accelerator
    local rc=$?
    if [[ -n $sampler ]]; then
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null
        awk -F', *' 'NF >= 2 { n++; u += $1; if ($2 > m) m = $2 }
            END { if (n) printf "GPU utilisation while training: mean %.0f%% over %d samples, peak memory used %d MiB\n", u / n, n, m;
                  else print "no nvidia-smi samples" }' "$samples"
    fi
    return $rc
}

export -f check_env tvl1_rate train_with_sampling
export PYTHON DEVICE OUT WORK
echo "fpar GPU check: device $DEVICE, steps $STEPS, budget ${BUDGET}s, output $OUT"
wanted env && step env 60 check_env
if wanted bench; then
    step "bench quick" 150 "$PYTHON" -m fpar bench --device "$DEVICE" --json "$OUT/bench_quick.json"
    step "bench full" 150 "$PYTHON" -m fpar bench --device "$DEVICE" --full --rows eval,train,flow \
        --json "$OUT/bench_full.json"
fi
wanted tvl1 && step "tvl1 batched" 60 tvl1_rate
wanted train && step "train rgb" 120 train_with_sampling
wanted tests && step tests 100 "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/interop/test_parity.py \
    tests/interop/test_parity_bf16.py tests/prepare/test_tvl1.py

rm -rf "$WORK"
echo
echo "=== summary (${SECONDS}s in all; log $LOG)"
printf '  %s\n' "${SUMMARY[@]}"

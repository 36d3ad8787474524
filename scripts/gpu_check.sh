#!/usr/bin/env bash
# The GPU check of issues 14 and 20: one call, about 10 minutes, on a CUDA machine. Fails (exit 3) without
# CUDA.
#
#   scripts/gpu_check.sh            # writes into $OUT when set, else gpu_check_out/<date>
#   STEPS="smoke resume" scripts/gpu_check.sh   # only these steps after the device check
#
# Steps (each under its own time limit; a failed step is reported and the others still run):
#   1. device       the CUDA devices (stops here, exit 3, without CUDA)
#   2. cuda tests   pytest -k cuda on the trainer tests (bf16 + channels_last run, fused students on CUDA),
#                   and the 2-process DDP tests, which must hide this machine's GPUs and run gloo on the CPU
#   3. smoke        every method one short epoch, augmentation on, teacher cache on and off, each batch and
#                   step under torch.cuda.set_sync_debug_mode("error") (issue 20; scripts/gpu_smoke.py)
#   4. determinism  deterministic: strict for every method; KD/BIRD/MFD trained twice, bit for bit
#   5. resume       crash and resume on CUDA (bit for bit), CPU -> GPU and GPU -> CPU checkpoints
#   6. bert         a tiny BERT student's KD steps (skipped without transformers)
#   7. workers      2 local workers under a parent CUDA_VISIBLE_DEVICES of GPU UUIDs
#   8. throughput   ResNet-20 img/s on CIFAR-10-sized synthetic data: fp32 NCHW vs bf16 + channels_last,
#                   beside airbench94's published 94% in 3.29 s on one A100
#   9. lockstep     10 KD students (LeNet-5, ResNet-20): today's lockstep vs train.fuse_students, the ratio
#  10. ddp          one run over every GPU with torchrun + nccl (skipped with one GPU)
# Output (so all come back from a device machine's $OUT): summary.md, log.txt, and one JSON per step
# (device, smoke, determinism, resume, bert, workers, throughput, lockstep, ddp); pytest's output is in
# log.txt.
#
# Python: $PYTHON, else .venv/bin/python, else python3; kdfair is imported from src/ (no install needed).
# kdfair's own needs missing there (pydantic on a bare PyTorch image) are installed from .whl/*.whl when
# that folder exists: fetch them on a machine with a registry with scripts/gpu_wheels.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT="${OUT:-gpu_check_out/$(date +%Y%m%d_%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
if [ -n "${PYTHON:-}" ]; then :; elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=":4096:8"
FAILED=()

say() { echo "gpu_check: $*" | tee -a "$LOG"; }

step() {  # step NAME LIMIT_S CMD...: run CMD under a time limit, output to the log; a failure is recorded
  local name="$1" limit="$2"; shift 2
  local begin; begin=$(date +%s)
  say "== $name (limit ${limit} s): $*"
  timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  say "== $name: exit $rc after $(( $(date +%s) - begin )) s"
  if [ "$rc" -ne 0 ]; then FAILED+=("$name (exit $rc)"); fi
  return "$rc"
}

NEEDS="import torch, numpy, scipy, pandas, pydantic, yaml, tqdm, pytest"
if ! "$PYTHON" -c "$NEEDS" > /dev/null 2>&1 && ls .whl/*.whl > /dev/null 2>&1; then
  say "installing $(ls .whl/*.whl | wc -l) carried wheels into /tmp/gpu_check_site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl >> "$LOG" 2>&1 || say "wheel install failed (see log.txt)"
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
fi
if ! "$PYTHON" -c "$NEEDS" >> "$LOG" 2>&1; then
  say "FAILED: $PYTHON lacks a package kdfair needs (see $LOG); carry them as wheels: scripts/gpu_wheels.sh"
  exit 2
fi

# 1. CUDA, or stop here: nothing below means anything without it
if ! step device 60 "$PYTHON" scripts/gpu_check.py device "$OUT/device.json"; then
  say "FAILED: no CUDA device: this check needs a GPU machine (torch.cuda.is_available() is False)"
  tail -n 3 "$LOG" >&2
  exit 3
fi
STEPS="${STEPS:-cuda_tests smoke determinism resume bert workers throughput lockstep ddp}"
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
if wanted cuda_tests; then
  step "cuda tests" 150 "$PYTHON" -m pytest tests/train/test_runtime.py tests/train/test_fused_students.py \
    -k cuda -p no:cacheprovider -q -rs
  step "ddp cpu tests" 150 "$PYTHON" -m pytest tests/train/test_ddp.py -p no:cacheprovider -q -rs
fi
if wanted smoke; then step smoke 150 "$PYTHON" scripts/gpu_check.py smoke "$OUT/smoke.json" --steps 4; fi
if wanted determinism; then
  step determinism 120 "$PYTHON" scripts/gpu_check.py determinism "$OUT/determinism.json" --steps 4
fi
if wanted resume; then step resume 120 "$PYTHON" scripts/gpu_check.py resume "$OUT/resume.json" --steps 4; fi
if wanted bert; then step bert 60 "$PYTHON" scripts/gpu_check.py bert "$OUT/bert.json" --steps 4; fi
if wanted workers; then
  step workers 120 "$PYTHON" scripts/gpu_check.py workers "$OUT/workers.json" --timeout 100
fi
if wanted throughput; then
  step throughput 100 "$PYTHON" scripts/gpu_check.py throughput "$OUT/throughput.json" --steps 150
fi
if wanted lockstep; then step lockstep 120 "$PYTHON" scripts/gpu_check.py lockstep "$OUT/lockstep.json" --steps 40; fi
if wanted ddp; then step ddp 90 "$PYTHON" scripts/gpu_check.py ddp "$OUT/ddp.json" --timeout 75; fi

{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - START )) s)"
  echo
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  for part in device smoke determinism resume bert workers throughput lockstep ddp; do
    echo
    echo "## $part"
    echo '```json'
    if [ -f "$OUT/$part.json" ]; then cat "$OUT/$part.json"; else echo "(not written)"; fi
    echo '```'
  done
  echo
  echo "## cuda tests"
  grep -E "passed|failed|skipped|error" "$LOG" | grep -v "^gpu_check" | tail -n 5
  echo
  if [ "${#FAILED[@]}" -eq 0 ]; then echo "all steps passed"; else echo "FAILED: ${FAILED[*]}"; fi
} > "$OUT/summary.md"
cat "$OUT/summary.md"
if [ "${#FAILED[@]}" -ne 0 ]; then
  say "FAILED steps: ${FAILED[*]} (details in $LOG)"
  exit 1
fi
say "all steps passed in $(( $(date +%s) - START )) s; results in $OUT"

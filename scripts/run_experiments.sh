#!/usr/bin/env bash
# The exact commands behind RESULTS.md: CPU-scale experiments, run one after another, 2 workers, 1 thread each.
# Usage: scripts/run_experiments.sh [EXPERIMENT ...]   (default: all, in RESULTS.md order)
# EXPERIMENT: demo trifeature_sgd trifeature trifeature_large cifar10 cifar10_long utkface_kd utkface_fair utkface_kd_long utkface_fair_long utkface_bird_lambda005 cifar10s hatexplain
# Outputs: experiments_out/<name>/ (git-ignored); logs and wall times: experiments_out/logs/<name>.log.
# Data: CIFAR-10 JPEG and UTKFace part 1 extracted under /tmp/kdfair_data (see docs/datasets.md); HateXplain
# at /work/shared/data/hatexplain. Re-running a finished experiment skips its finished runs (resume).
set -euo pipefail
cd "$(dirname "$0")/.."
KDFAIR="${KDFAIR:-.venv/bin/kdfair}"
DATA="${KDFAIR_DATA:-/tmp/kdfair_data}"
export KDFAIR_CACHE="${KDFAIR_CACHE:-/tmp/kdfair_cache}"   # decoded CIFAR-10 JPEG cache, Trifeature, vocabulary
mkdir -p experiments_out/logs

ensure_data() {
  if [ ! -d "$DATA/cifar10_yoongikim_jpg" ]; then mkdir -p "$DATA" && tar -xf /work/shared/data/cifar10-jpeg.tar -C "$DATA"; fi
  if [ ! -d "$DATA/utkface" ]; then mkdir -p "$DATA/utkface" && tar -xf /work/shared/data/utkface/crop_part1.tar -C "$DATA/utkface"; fi
}

timed() {  # timed NAME CMD...: run CMD, log to experiments_out/logs/NAME.log with its wall time in seconds
  local name="$1"; shift
  local start; start=$(date +%s)
  echo "$ $*" > "experiments_out/logs/$name.log"
  "$@" >> "experiments_out/logs/$name.log" 2>&1 && rc=0 || rc=$?
  echo "EXIT $rc WALL_S $(( $(date +%s) - start ))" | tee -a "experiments_out/logs/$name.log"
}

copy_results() {  # copy_results NAME: the small report artefacts worth keeping in git
  local src="experiments_out/$1" dst="results/$1"
  mkdir -p "$dst/tables"
  cp "$src"/report/tables/*.md "$dst/tables/"
  cp "$src/audit/summary.csv" "$src/audit/significance_counts.csv" "$dst/"
  cp "experiments_out/logs/$1.log" "$dst/run.log"
  local py=.venv/bin/python
  case "$1" in  # the trend / method-comparison statistics quoted in RESULTS.md
    utkface_fair*|utkface_bird*) "$py" results/trends.py "$src/audit" --methods race --out "$dst/methods.md" > /dev/null ;;
    cifar10s)      "$py" results/trends.py "$src/audit" --methods grey --out "$dst/methods.md" > /dev/null ;;
    *)             "$py" results/trends.py "$src/audit" --out "$dst/trends.md" > /dev/null ;;
  esac
  case "$1" in
    trifeature*) "$py" results/trends.py "$src/audit" --max-t 40 --out "$dst/trends_all_T.md" > /dev/null ;;
  esac
}

run_one() {
  case "$1" in
    demo)         timed demo "$KDFAIR" demo --out experiments_out/demo ;;
    trifeature_sgd)  # the first demo's settings (SGD students) + T = 20, 30, 40
                  timed trifeature_sgd "$KDFAIR" sweep configs/experiments/trifeature_demo_sgd_resnet20_lenet5.yaml --out experiments_out/trifeature_sgd --workers 2 ;;
    trifeature)   # the demo + T = 20, 30, 40: reuses the demo's finished runs (same run configs)
                  mkdir -p experiments_out/trifeature/runs
                  cp -rn experiments_out/demo/runs/. experiments_out/trifeature/runs/
                  timed trifeature "$KDFAIR" sweep configs/experiments/trifeature_resnet20_lenet5.yaml --out experiments_out/trifeature --workers 2 ;;
    trifeature_large) timed trifeature_large "$KDFAIR" sweep configs/experiments/trifeature_large_resnet20_lenet5.yaml --out experiments_out/trifeature_large --workers 2 ;;
    cifar10)      timed cifar10 "$KDFAIR" sweep configs/experiments/cifar10_resnet20_lenet5.yaml --out experiments_out/cifar10 --workers 2 ;;
    cifar10_long) timed cifar10_long "$KDFAIR" sweep configs/experiments/cifar10_long_resnet20_lenet5.yaml --out experiments_out/cifar10_long --workers 2 ;;
    utkface_kd)   timed utkface_kd "$KDFAIR" sweep configs/experiments/utkface_kd_resnet20_lenet5.yaml --out experiments_out/utkface_kd --workers 2 ;;
    utkface_fair) timed utkface_fair "$KDFAIR" sweep configs/experiments/utkface_fair_resnet20_lenet5.yaml --out experiments_out/utkface_fair --workers 2 ;;
    utkface_kd_long)   timed utkface_kd_long "$KDFAIR" sweep configs/experiments/utkface_kd_long_resnet20_lenet5.yaml --out experiments_out/utkface_kd_long --workers 2 ;;
    utkface_fair_long) timed utkface_fair_long "$KDFAIR" sweep configs/experiments/utkface_fair_long_resnet20_lenet5.yaml --out experiments_out/utkface_fair_long --workers 2 ;;
    utkface_bird_lambda005) timed utkface_bird_lambda005 "$KDFAIR" sweep configs/experiments/utkface_bird_lambda005_resnet20_lenet5.yaml --out experiments_out/utkface_bird_lambda005 --workers 2 ;;
    cifar10s)     timed cifar10s "$KDFAIR" sweep configs/experiments/cifar10s_resnet20_lenet5.yaml --out experiments_out/cifar10s --workers 2 ;;
    hatexplain)   timed hatexplain "$KDFAIR" sweep configs/experiments/hatexplain_bert_distilbert.yaml --out experiments_out/hatexplain --workers 2 ;;
    *) echo "unknown experiment '$1'; valid: demo trifeature_sgd trifeature trifeature_large cifar10 cifar10_long utkface_kd utkface_fair utkface_kd_long utkface_fair_long utkface_bird_lambda005 cifar10s hatexplain" >&2; exit 2 ;;
  esac
  if [ -f "experiments_out/$1/audit/summary.csv" ]; then copy_results "$1"; fi
}

ensure_data
if [ "$#" -eq 0 ]; then set -- demo trifeature_sgd trifeature trifeature_large cifar10 cifar10_long utkface_kd utkface_fair utkface_kd_long utkface_fair_long utkface_bird_lambda005 cifar10s hatexplain; fi
for name in "$@"; do run_one "$name"; done

#!/usr/bin/env bash
# Fetch, into .whl/ (git-ignored), the wheels kdfair needs that a bare PyTorch GPU image lacks: pydantic and
# its own needs, at the versions installed here, for CPython $GPU_PYTHON (default 3.12) on x86-64 Linux.
# scripts/gpu_check.sh installs them when .whl/ travels with the working tree (device tool: carry ".whl").
#
#   scripts/gpu_wheels.sh [EXTRA_PACKAGE==VERSION ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
PACKAGES=$("$PY" -c 'from importlib.metadata import version as v
print(" ".join(f"{n}=={v(n)}" for n in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")))')
mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $PACKAGES "$@"
ls -l .whl

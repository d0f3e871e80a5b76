#!/usr/bin/env bash
# Installs the harness (editable) and its test tools into the current Python, idempotently.
# torch is pinned to the CPU build first: an unpinned `torch` would pull a multi-GB CUDA build.
set -euo pipefail
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp=.cache/setup.stamp
mkdir -p .cache
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && $PYTHON -c "import harness, torch, triton, nox, httpx, importlib.util as u; assert u.find_spec('ray')" 2>/dev/null; then
  exit 0
fi
$PYTHON -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
$PYTHON -m pip install -q --disable-pip-version-check -e ".[triton,docker,agent,ray,test,lint]" nox
touch "$stamp"

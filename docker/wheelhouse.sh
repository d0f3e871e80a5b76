#!/usr/bin/env bash
# Fill a wheelhouse with the harness wheel and every runtime dependency an image
# for BACKEND needs, so that `docker build` installs with
#   pip install --no-index --find-links /wheelhouse ...
# and never touches a package index.
#
# Why: on air-gapped GPU/NPU sites (and in this project's CI) pip inside
# `docker build` cannot reach an index or verify TLS. The wheelhouse is filled
# on a host that can (or from a mirror / copied in on a disk), and doubles as
# the build context of the image: docker/<backend>/Dockerfile COPYs it.
#
# Usage: docker/wheelhouse.sh [cpu|cuda|ascend] [--list]  (default cpu)
#   --list                print the requirements the image installs, one a line, and exit
#                         (nothing is downloaded; tests read the ascend list this way)
# Env (versions are pinned; the Dockerfiles pin the same through build ARGs):
#   WHEELHOUSE_DIR        output dir (default .cache/wheelhouse/<backend>)
#   PROJECT_DIR           harness source tree (default: this repo)
#   PYTHON                host Python used to run pip (default python3)
#   PIP                   pip command (default "$PYTHON -m pip")
#   TORCH_VERSION         cpu: 2.13.0 (local CPU wheel)   ascend: 2.7.1 (CPU build)
#   TRITON_VERSION        cpu: 3.9.0 (TRITON_INTERPRET=1 interpreter mode)
#   TORCH_NPU_VERSION     ascend: 2.7.1.post2
#   TRITON_ASCEND_VERSION ascend: 3.2.0
#   TORCH_INDEX_URL       extra index for CPU torch builds (ascend on x86_64
#                         defaults to https://download.pytorch.org/whl/cpu;
#                         PyPI's x86_64 torch is a multi-GB CUDA build)
#   WHEELHOUSE_PLATFORM   cross-target, e.g. manylinux_2_28_aarch64 for an
#                         aarch64 image built on an x86_64 host (binary wheels only)
#   WHEELHOUSE_PYTHON     target Python version for cross-target (default 3.11)
set -euo pipefail

BACKEND="${1:-cpu}"
LIST_ONLY=0
[ "${2:-}" = "--list" ] && LIST_ONLY=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_DIR="${PROJECT_DIR:-$(cd "$HERE/.." && pwd)}"
WH="${WHEELHOUSE_DIR:-$PROJECT_DIR/.cache/wheelhouse/$BACKEND}"
PYTHON="${PYTHON:-python3}"
read -r -a PIP <<<"${PIP:-$PYTHON -m pip}"
PLATFORM="${WHEELHOUSE_PLATFORM:-}"
PYVER="${WHEELHOUSE_PYTHON:-3.11}"
# The images run Python $PYVER; a host with another Python downloads for it (binary wheels only).
HOST_PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "")"
if [ -z "$PLATFORM" ] && [ "$HOST_PYVER" != "$PYVER" ]; then
  PLATFORM="manylinux_2_28_$(uname -m)"
fi

say() { printf '[wheelhouse] %s\n' "$*" >&2; }

CANN_REQS=()  # ascend only
case "$BACKEND" in
  cpu)
    TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
    TRITON_VERSION="${TRITON_VERSION:-3.9.0}"
    # torch is pinned: a bare `torch` would resolve to a CUDA build of several GB.
    TORCH_REQS=("torch==$TORCH_VERSION")
    EXTRA_REQS=("triton==$TRITON_VERSION")
    HARNESS_EXTRAS="[torch,triton]"
    ;;
  cuda)
    # torch, triton and CUDA come with the base image (pytorch/pytorch ...-devel);
    # only the harness and its pure-Python/numeric deps are added.
    # [torch,triton] is satisfied by the base image at install time; resolving it here
    # would fetch a multi-GB CUDA torch. ninja: for torch C++/CUDA extensions.
    TORCH_REQS=()
    EXTRA_REQS=(ninja)
    HARNESS_EXTRAS=""
    ;;
  ascend)
    TORCH_VERSION="${TORCH_VERSION:-2.7.1}"
    TORCH_NPU_VERSION="${TORCH_NPU_VERSION:-2.7.1.post2}"
    TRITON_ASCEND_VERSION="${TRITON_ASCEND_VERSION:-3.2.0}"
    target_arch="${PLATFORM:-$(uname -m)}"
    if [[ "$target_arch" == *x86_64* && -z "${TORCH_INDEX_URL:-}" ]]; then
      TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
    fi
    TORCH_REQS=("torch==$TORCH_VERSION")
    EXTRA_REQS=("torch-npu==$TORCH_NPU_VERSION" "triton-ascend==$TRITON_ASCEND_VERSION")
    # CANN's own runtime Python packages (CANN 8.5.0 "running dependencies"), which the 8.5.0 base
    # image no longer installs, plus pybind11: triton-ascend's backend imports it as soon as
    # `import triton` runs, and its wheel declares no dependencies. One consistent set:
    # - numpy below 2 (CANN, Python < 3.13); 1.26.4 as triton-ascend's requirements.txt and install
    #   guide pin it; the harness asks numpy>=1.24, scipy>=1.10, and scipy 1.13.1 takes numpy <2.3;
    # - protobuf 3.20.x (CANN); attrs, decorator, psutil, scipy at triton-ascend's install-guide pins;
    # - the rest unpinned as CANN lists them (sympy>=1.5.1 and cffi>=1.12.3 are CANN's floors).
    # The Dockerfile installs exactly this list (cann-requirements.txt) and checks it after the build.
    CANN_REQS=(
      "numpy==1.26.4" "scipy==1.13.1" "protobuf==3.20.3" "attrs==24.2.0" "decorator==5.1.1"
      "psutil==6.0.0" "sympy>=1.5.1" "cffi>=1.12.3" cython pyyaml pathlib2 requests absl-py pybind11
    )
    # No [triton] extra: triton-ascend provides the `triton` module under another
    # distribution name; upstream triton would overwrite it.
    HARNESS_EXTRAS="[torch]"
    ;;
  *) say "unknown backend '$BACKEND' (cpu|cuda|ascend)"; exit 2 ;;
esac
if [ "$LIST_ONLY" = 1 ]; then
  printf '%s\n' "kernel-harness${HARNESS_EXTRAS}" "${TORCH_REQS[@]}" "${EXTRA_REQS[@]}" \
    "${CANN_REQS[@]}"
  exit 0
fi

mkdir -p "$WH"
WH="$(cd "$WH" && pwd)"
start=$(date +%s)

# 1. The harness wheel, rebuilt every time (same version, new code).
if [ ! -f "$PROJECT_DIR/pyproject.toml" ]; then
  say "no pyproject.toml in $PROJECT_DIR: cannot build the harness wheel"; exit 1
fi
rm -f "$WH"/kernel_harness-*.whl
"${PIP[@]}" wheel --quiet --no-deps "$PROJECT_DIR" -w "$WH"
HARNESS_WHEEL="$(ls "$WH"/kernel_harness-*.whl)"
say "harness wheel: $(basename "$HARNESS_WHEEL")"

# 2. torch first, without deps, so the pinned (CPU) build is what lands here.
INDEX_ARGS=()
[ -n "${TORCH_INDEX_URL:-}" ] && INDEX_ARGS=(--extra-index-url "$TORCH_INDEX_URL")
CROSS_ARGS=()
if [ -n "$PLATFORM" ]; then
  # The older manylinux tags are compatible with a newer glibc target: accept them too.
  CROSS_ARGS=(--only-binary=:all: --platform "$PLATFORM" --python-version "$PYVER" --implementation cp)
  for tag in manylinux_2_17 manylinux2014 manylinux_2_27 manylinux_2_28; do
    t="${tag}_${PLATFORM##*_}"
    [[ "$PLATFORM" == *x86_64 ]] && t="${tag}_x86_64"
    [ "$t" != "$PLATFORM" ] && CROSS_ARGS+=(--platform "$t")
  done
fi
if [ ${#TORCH_REQS[@]} -gt 0 ]; then
  "${PIP[@]}" download --quiet --no-deps "${INDEX_ARGS[@]}" "${CROSS_ARGS[@]}" -d "$WH" "${TORCH_REQS[@]}"
fi

# 3. Everything else, resolved together against what is already in the wheelhouse.
REQS=("kernel-harness${HARNESS_EXTRAS}" "${TORCH_REQS[@]}" "${EXTRA_REQS[@]}" "${CANN_REQS[@]}" setuptools wheel)
if [ -n "$PLATFORM" ]; then
  # pip evaluates environment markers for the host even with --platform (a cross download
  # of torch would want x86_64's nvidia-* wheels), so the target's closure is resolved by
  # uv, which evaluates markers for the target platform, and then fetched without deps.
  if ! command -v uv >/dev/null 2>&1; then
    say "cross-target ($PLATFORM) needs uv to resolve for the target: pip install uv"
    say "(or run this script on a $PLATFORM host, where plain pip resolves natively)"
    exit 1
  fi
  arch="${PLATFORM##*_}"                        # manylinux_2_28_aarch64 -> aarch64
  [[ "$PLATFORM" == *x86_64 ]] && arch=x86_64
  glibc="$(sed -E 's/^manylinux_([0-9]+)_([0-9]+)_.*/manylinux_\1_\2/' <<<"$PLATFORM")"
  [[ "$glibc" == manylinux_* ]] || glibc=manylinux_2_28
  printf '%s\n' "${REQS[@]}" >"$WH/requirements.in"
  UV_INDEX_ARGS=()
  [ -n "${TORCH_INDEX_URL:-}" ] && UV_INDEX_ARGS=(--extra-index-url "$TORCH_INDEX_URL" --index-strategy unsafe-best-match)
  uv pip compile --quiet --no-header --no-annotate --only-binary :all: --python-version "$PYVER" \
    --python-platform "$arch-$glibc" --find-links "$WH" "${UV_INDEX_ARGS[@]}" \
    -o "$WH/pinned.txt" "$WH/requirements.in"
  "${PIP[@]}" download --quiet --no-deps "${INDEX_ARGS[@]}" "${CROSS_ARGS[@]}" --find-links "$WH" -d "$WH" -r "$WH/pinned.txt"
else
  # `pip wheel` also turns any sdist-only dependency into a wheel, so the image
  # never compiles a dependency (it may have no compiler for it).
  "${PIP[@]}" wheel --quiet "${INDEX_ARGS[@]}" --find-links "$WH" -w "$WH" "${REQS[@]}"
fi

# The list the image installs (versions are also pinned by the Dockerfile ARGs).
{
  echo "# generated by docker/wheelhouse.sh $BACKEND"
  echo "kernel-harness${HARNESS_EXTRAS}"
  for r in "${TORCH_REQS[@]}" "${EXTRA_REQS[@]}"; do echo "$r"; done
} >"$WH/requirements.txt"
if [ ${#CANN_REQS[@]} -gt 0 ]; then
  printf '%s\n' "# generated by docker/wheelhouse.sh $BACKEND: CANN's runtime Python packages" "${CANN_REQS[@]}" \
    >"$WH/cann-requirements.txt"
fi

n=$(find "$WH" -maxdepth 1 -name "*.whl" | wc -l)
say "$WH: $n wheels, $(du -sh "$WH" | cut -f1), $(( $(date +%s) - start ))s"

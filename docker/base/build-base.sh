#!/usr/bin/env bash
# Build a minimal Debian bookworm base image from Debian packages only:
# debootstrap a rootfs, then `docker import` it.
#
# Why: air-gapped GPU/NPU sites (and this project's CI) reach a Debian mirror
# (or a local mirror of it) but no image registry, so `FROM python:3.11-slim`
# cannot be pulled there. This image is a drop-in BASE_IMAGE for
# docker/cpu/Dockerfile: Debian's python3 (3.11 on bookworm) at /usr/bin/python3,
# python3-venv, python3-dev, build-essential and ninja-build (the harness builds
# C++ extensions inside the container), ca-certificates.
#
# Idempotent: does nothing when the image exists, unless --force. The rootfs
# tarball is cached (keyed by suite, arch and package list) so a --force rebuild
# or a second host only needs `docker import`.
#
# Usage: docker/base/build-base.sh [--force] [--name NAME] [--tarball-only]
#                                  [--from-tarball FILE]
# Env:
#   BASE_IMAGE_NAME  image name (default kernel-harness/base:bookworm)
#   BASE_CACHE_DIR   cache dir for the rootfs tarball (default .cache/base)
#   DEBIAN_MIRROR    mirror URL (default http://deb.debian.org/debian)
#   DEBIAN_SUITE     suite (default bookworm)
#   DEBIAN_ARCH      dpkg architecture (default: the host's, e.g. amd64/arm64)
#   BASE_EXTRA_PACKAGES  extra packages, comma separated
set -euo pipefail

NAME="${BASE_IMAGE_NAME:-kernel-harness/base:bookworm}"
CACHE_DIR="${BASE_CACHE_DIR:-.cache/base}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"
ARCH="${DEBIAN_ARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}"
FORCE=0
TARBALL_ONLY=0
FROM_TARBALL=""

PACKAGES="python3,python3-venv,python3-dev,build-essential,ninja-build,ca-certificates"
[ -n "${BASE_EXTRA_PACKAGES:-}" ] && PACKAGES="$PACKAGES,${BASE_EXTRA_PACKAGES}"

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '[build-base] %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --name) NAME="$2"; shift ;;
    --name=*) NAME="${1#*=}" ;;
    --tarball-only) TARBALL_ONLY=1 ;;
    --from-tarball) FROM_TARBALL="$2"; shift ;;
    --from-tarball=*) FROM_TARBALL="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    *) say "unknown argument: $1"; usage; exit 2 ;;
  esac
  shift
done

if [ "$TARBALL_ONLY" -eq 0 ] && [ "$FORCE" -eq 0 ] && docker image inspect "$NAME" >/dev/null 2>&1; then
  say "image $NAME exists; nothing to do (use --force to rebuild)"
  exit 0
fi

mkdir -p "$CACHE_DIR"
CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
KEY="$(printf '%s|%s|%s|%s' "$SUITE" "$ARCH" "$PACKAGES" "v1" | sha256sum | cut -c1-12)"
TARBALL="${FROM_TARBALL:-$CACHE_DIR/rootfs-$SUITE-$ARCH-$KEY.tar.gz}"

if [ -n "$FROM_TARBALL" ] && [ ! -f "$FROM_TARBALL" ]; then
  say "no such tarball: $FROM_TARBALL"; exit 2
fi

if [ ! -f "$TARBALL" ] || { [ "$FORCE" -eq 1 ] && [ -z "$FROM_TARBALL" ]; }; then
  if [ "$(id -u)" -ne 0 ]; then
    say "debootstrap needs root (run with sudo, or pass --from-tarball)"; exit 1
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
  fi
  ROOTFS="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
  trap 'rm -rf --one-file-system "$ROOTFS"' EXIT
  say "debootstrap $SUITE/$ARCH from $MIRROR into $ROOTFS"
  start=$(date +%s)
  debootstrap --variant=minbase --arch="$ARCH" --components=main \
    --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 || {
      say "debootstrap failed; tail of $CACHE_DIR/debootstrap.log:"; tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  say "debootstrap took $(( $(date +%s) - start ))s"

  # Keep later apt/dpkg runs in derived images lean, and the image itself small.
  cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/01-kernel-harness-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
  cat >"$ROOTFS/etc/apt/apt.conf.d/01-kernel-harness" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CFG
  cat >"$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
  find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/* \
         "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
         "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/* \
         "$ROOTFS"/var/cache/debconf/*-old
  find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  find "$ROOTFS/usr/lib/python3" "$ROOTFS/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
  : >"$ROOTFS/etc/machine-id"
  printf 'kernel-harness\n' >"$ROOTFS/etc/hostname"

  say "writing $TARBALL"
  tmp="$TARBALL.partial"
  tar --numeric-owner --xattrs -C "$ROOTFS" -c . | gzip -1 >"$tmp"
  mv "$tmp" "$TARBALL"
  rm -rf --one-file-system "$ROOTFS"
  trap - EXIT
  say "rootfs tarball: $(du -h "$TARBALL" | cut -f1)"
else
  say "using cached rootfs tarball $TARBALL"
fi

if [ "$TARBALL_ONLY" -eq 1 ]; then
  echo "$TARBALL"
  exit 0
fi

PYVER="$(tar -xzOf "$TARBALL" ./var/lib/dpkg/status 2>/dev/null \
  | awk '/^Package: python3$/{p=1} p&&/^Version:/{print $2; exit}')" || true
say "importing $TARBALL as $NAME"
docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.opencontainers.image.title=\"kernel-harness-base\"" \
  --change "LABEL org.opencontainers.image.base.name=\"debian:$SUITE\"" \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase from debootstrap, python3 ${PYVER:-unknown}\"" \
  --change "LABEL dev.kernel-harness.base.packages=\"$PACKAGES\"" \
  --message "debootstrap $SUITE $ARCH ($PACKAGES)" \
  "$TARBALL" "$NAME" >/dev/null
say "built $NAME ($(docker image inspect "$NAME" --format '{{.Id}} {{.Size}}' | awk '{printf "%s, %.0f MB", substr($1,1,19), $2/1e6}'))"

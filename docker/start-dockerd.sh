#!/usr/bin/env bash
# Start a Docker engine on this machine if none answers, installing Debian's
# docker.io first when dockerd is missing. Idempotent: a second call with a
# running engine only checks it and returns.
#
# Why a script and not systemd: CI machines and air-gapped build hosts often
# run without an init system (containers, chroots, sandboxes). dockerd runs
# fine as a plain background process as root there.
#
# Env:
#   DOCKERD_LOG      log file for dockerd (default /var/log/dockerd.log)
#   DOCKERD_TIMEOUT  seconds to wait for the engine to answer (default 60)
#   DOCKERD_ARGS     extra flags for dockerd (e.g. "--storage-driver=vfs")
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
TIMEOUT="${DOCKERD_TIMEOUT:-60}"

say() { printf '[start-dockerd] %s\n' "$*" >&2; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  SUDO=""
else
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "dockerd missing: installing Debian's docker.io"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends docker.io
fi
if ! command -v docker >/dev/null 2>&1; then
  say "docker client missing: installing Debian's docker-cli"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends docker-cli \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends docker.io
fi

if engine_answers; then
  say "engine already answers"
  exit 0
fi

# A stale pid file from a killed dockerd blocks a new one.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  $SUDO rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd (log: $LOG)"
  # shellcheck disable=SC2086
  $SUDO sh -c "nohup dockerd ${DOCKERD_ARGS:-} >>'$LOG' 2>&1 &"
fi

for _ in $(seq 1 "$TIMEOUT"); do
  if engine_answers; then
    say "engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null), storage: $(docker info --format '{{.Driver}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
say "dockerd did not answer within ${TIMEOUT}s; last log lines:"
tail -n 30 "$LOG" >&2 || true
exit 1

#!/usr/bin/env bash
# Runtime install from an empty pip cache, as `make run` does it (`make venv`, not counting the venv's creation and
# pip's self-upgrade): wall time, CPU time and venv size (issue 19: under 3 minutes, under 1.5 GB); then, for the
# first checkout, the shares of dependency resolution, unpacking and byte-compilation.
#
# usage: benchmarks/install_time.sh WORK_DIR [CHECKOUT ...]
#   CHECKOUT: repository roots to compare (default: this one), e.g. a worktree of main and this branch; each gets a
#   fresh python3.11 venv under WORK_DIR (removed at the end unless KEEP=1). PIP_NO_CACHE_DIR=1: pip's cache is
#   not used; wheels come from the indexes pip is configured with (on this machine kind: local folders, so
#   "download" is a local copy and the time is resolving, unpacking and byte-compiling).
set -u
WORK=$1; shift
[ $# -eq 0 ] && set -- "$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-python3.11}
export PIP_NO_CACHE_DIR=1
mkdir -p "$WORK"
echo "install, $(date -u +%FT%TZ), $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "| %-58s | %7s | %10s | %7s | %5s |\n" step "wall s" "user+sys s" "size MB" load1
printf "|%s|\n" "------------------------------------------------------------|---------|------------|---------|-------"
step() {  # label venv cmd...
  local label=$1 venv=$2; shift 2
  /usr/bin/time -f "%e %U %S" -o "$WORK/t" "$@" > "$WORK/log" 2>&1 || { echo "FAILED: $label"; tail -5 "$WORK/log"; }
  read -r wall user sys < "$WORK/t"
  printf "| %-58s | %7.1f | %10.1f | %7s | %5s |\n" "$label" "$wall" "$(echo "$user + $sys" | bc)" \
      "$(du -sm "$venv" | cut -f1)" "$(cut -d' ' -f1 /proc/loadavg)"
}
fresh() {  # venv: created and pip + wheel upgraded as the Makefile does (not timed)
  rm -rf "$1" && "$PY" -m venv "$1" && "$1/bin/pip" install -q --upgrade pip wheel > /dev/null 2>&1
}
n=0
for repo in "$@"; do
  n=$((n + 1)); v=$WORK/make$n; fresh "$v"
  step "make venv: $(basename "$repo") @ $(git -C "$repo" rev-parse --short HEAD)" "$v" \
      make -C "$repo" venv VENV="$v" PYTHON="$PY"
  echo "  $(basename "$repo"), largest (MB): $(du -sm "$v"/lib/python3.11/site-packages/* | sort -rn | head -7 | \
      awk '{n=split($2, p, "/"); printf "%s %s, ", p[n], $1}')"
done
repo=$1; b=$WORK/parts; fresh "$b"
step "  $(basename "$repo"): resolve only (pip --dry-run --ignore-installed)" "$b" "$b/bin/pip" install -q --dry-run \
    --ignore-installed -e "$repo"
step "  $(basename "$repo"): pip install --no-compile -e . (resolve + unpack)" "$b" "$b/bin/pip" install -q \
    --no-compile -e "$repo"
step "  then compileall -j 1, everything (what pip install does)" "$b" "$b/bin/python" -m compileall -q -j 1 "$b/lib"
find "$b/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
step "  or compileall -j 0 without the packages' tests (make run)" "$b" "$b/bin/python" -m compileall -q -j 0 \
    -x '[\\/]tests?[\\/]' "$b/lib"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "${KEEP:-}" ] && rm -rf "$WORK"/make* "$b"
exit 0

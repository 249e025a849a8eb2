#!/usr/bin/env bash
# Cold `lesiondx predict --task us-liver IMAGE --out DIR` processes (issue 19: under 3 s), old code vs new, in the
# same runtime-only venv (no torch), interleaved (old, new, new, old, ...) so each pair sees about the same load.
# Also `python -c "import lesiondx.cli"` alone. Wall time, user+sys CPU seconds (less disturbed by other jobs on
# shared cores than wall time) and peak RSS from /usr/bin/time; load1 from /proc/loadavg when the run ended.
#
# usage: benchmarks/cold_start.sh VENV OLD_SRC NEW_SRC [ROUNDS]
#   VENV: a runtime-only venv (`make venv VENV=V` in a checkout) holding what both checkouts import (the old
#   code imports statsmodels: install V from the old checkout); OLD_SRC / NEW_SRC: the `src` folders of two
#   checkouts (e.g. `git worktree add /tmp/lesiondx-old <commit>` → /tmp/lesiondx-old/src), put first on
#   PYTHONPATH; the `lesiondx` script of VENV runs both. OLD_SRC "-": the new code only.
set -u
VENV=$1; OLD=$2; NEW=$3; ROUNDS=${4:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=$REPO/examples/aul_liver_us_mini/images/malignant_010.jpg
OUT=$(mktemp -d /tmp/lesiondx-cold.XXXXXX)
"$VENV/bin/python" -c "import torch" 2>/dev/null && echo "note: torch is importable in $VENV (not a runtime-only venv)"
echo "cold start, $(date -u +%FT%TZ), $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "| %-8s | %-4s | %5s | %7s | %9s | %8s | %5s | %-9s |\n" what code round "wall s" "user+sys s" "peak MB" load1 P
printf "|%s|\n" "----------|------|-------|---------|------------|----------|-------|-----------"
one() {  # what code src round cmd...
  local what=$1 code=$2 src=$3 round=$4; shift 4
  local log=$OUT/$what.$code.$round
  /usr/bin/time -f "%e %U %S %M" -o "$log.time" env PYTHONPATH="$src" "$@" > "$log.out" 2> "$log.err" \
      || { echo "FAILED: $what $code (see $log.err)"; tail -3 "$log.err"; return; }
  read -r wall user sys rss < "$log.time"
  local p; p=$(grep -o '"probability": [0-9.]*' "$log.out" | head -1 | awk '{printf "%.5f", $2}')
  printf "| %-8s | %-4s | %5s | %7.2f | %10.2f | %8d | %5s | %-9s |\n" "$what" "$code" "$round" "$wall" \
      "$(echo "$user + $sys" | bc)" $((rss / 1024)) "$(cut -d' ' -f1 /proc/loadavg)" "${p:--}"
}
for r in $(seq 1 "$ROUNDS"); do
  order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"; [ "$OLD" = - ] && order=new
  for code in $order; do
    src=$OLD; [ "$code" = new ] && src=$NEW
    one predict "$code" "$src/" "$r" "$VENV/bin/lesiondx" predict --task us-liver "$IMAGE" --out "$OUT/us.$code" --json
  done
  for code in $order; do
    src=$OLD; [ "$code" = new ] && src=$NEW
    one "import" "$code" "$src/" "$r" "$VENV/bin/python" -c "import lesiondx.cli"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); outputs in $OUT"

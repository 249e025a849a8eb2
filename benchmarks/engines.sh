#!/usr/bin/env bash
# ONNX Runtime vs torch, side by side in one run: cold `predict` processes for one ultrasound frame, the 154-slice
# ct-covid series and a 60-slice ct-liver study (IRCADb p01, read in place through symlinks outside the repo),
# each as wall time and peak RSS from /usr/bin/time -v. The machine's 2 cores are shared with other jobs, so the
# engines run interleaved (onnx, torch, torch, onnx, ...): each pair sees about the same load.
#
# usage: benchmarks/engines.sh RUNTIME_VENV FULL_VENV OUT_DIR [ROUNDS]
#   RUNTIME_VENV: `pip install -e .` (no torch) — the onnx runs; FULL_VENV: with .[train] — the torch runs
set -u
RT=$1; FULL=$2; OUT=$3; ROUNDS=${4:-2}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${LESIONDX_SHARED_DATA:-$REPO/../shared/data}
US=$REPO/examples/aul_liver_us_mini/images/malignant_010.jpg
COVID=$DATA/covid_ct_md_sample/series/normal001
mkdir -p "$OUT"
LIVER=$OUT/ctl_p01_60  # symlinks to the first 60 slices of IRCADb p01 (no copy: CC BY-NC-ND)
if [ -d "$DATA/liver_ircadb01_p01_p07/ct/p01" ] && [ ! -d "$LIVER" ]; then
  mkdir -p "$LIVER"
  for i in $(seq 0 59); do ln -s "$DATA/liver_ircadb01_p01_p07/ct/p01/image_$i" "$LIVER/image_$i"; done
fi
run() {  # name engine args...
  local name=$1 engine=$2; shift 2
  local py=$RT/bin/python; [ "$engine" = torch ] && py=$FULL/bin/python
  local log=$OUT/$name.$engine.$r.time
  /usr/bin/time -v env PYTHONPATH=$REPO/src "$py" -m lesiondx.cli predict "$@" --engine "$engine" --json \
      > "$OUT/$name.$engine.$r.json" 2> "$log"
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
  printf "%-9s %-6s round %s  wall %8s  peak_rss_MB %6d  load1 %s\n" "$name" "$engine" "$r" "$wall" $((rss / 1024)) \
      "$(cut -d' ' -f1 /proc/loadavg)"
}
for r in $(seq 1 "$ROUNDS"); do
  engines="onnx torch"; [ $((r % 2)) -eq 0 ] && engines="torch onnx"
  for e in $engines; do run us-liver "$e" --task us-liver "$US" --out "$OUT/us.$e"; done
  for e in $engines; do run ct-covid "$e" --task ct-covid "$COVID" --out "$OUT/covid.$e"; done
  if [ -d "$LIVER" ]; then for e in $engines; do run ct-liver "$e" --task ct-liver "$LIVER" --out "$OUT/liver.$e"; done; fi
done

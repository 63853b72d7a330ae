#!/bin/bash
# Captures tests/data/backtrace_decode.sqlite on the GPU machine (see tests/data/README.md), then checks
# that an `ncu --profile-from-start off --kernel-name regex:^NAME$ --launch-skip K --launch-count 1` command lands on
# the instance the trace says (the step holding it is the slowest one under ncu).
# From the repo root there, with .nsys-kit carried:  bash scripts/workloads/capture_backtrace.sh
# The script is run from a copy in /tmp/wl with cwd /tmp so that no checkout path enters the trace.
set -u
OUT=${OUT:-/tmp/out}; T=/tmp/traces; L=/tmp/blogs; mkdir -p "$T" "$L" "$OUT" /tmp/wl
source .nsys-kit/env.sh
cp scripts/workloads/_common.py scripts/workloads/sync_decode.py /tmp/wl/
{ echo "checkout: $(pwd)"; echo "home: $HOME"; nsys --version; nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__)'; } > "$L/info.txt" 2>&1
nsys profile --help > "$L/nsys_profile_help.txt" 2>&1
SAMPLE=cpu; grep -q 'process-tree' "$L/nsys_profile_help.txt" && SAMPLE=process-tree
grep -n -E 'cudabacktrace|gpu-metrics-devices|cuda-memory-usage|--sample|--backtrace' "$L/nsys_profile_help.txt" | head -20
FLAGS="--trace=cuda,nvtx --cudabacktrace=all:500 --sample=$SAMPLE --backtrace=dwarf --cpuctxsw=none --cuda-memory-usage=true --gpu-metrics-devices=all --cuda-graph-trace=node -c cudaProfilerApi --export=sqlite"
capture() {  # NAME STEPS TIMEOUT_S
  local t0; t0=$(date +%s)
  ARGS="/tmp/wl/sync_decode.py --layers 4 --warmup 1 --iters 2 --steps $2 --keep-mb 4 --nvtx --cuda-profiler-capture"
  ( cd /tmp && timeout "$3" nsys profile --force-overwrite=true $FLAGS -o "$T/$1" python3 $ARGS ) > "$L/$1.profile.log" 2>&1
  echo "$1: rc=$? $(( $(date +%s) - t0 )) s, $(stat -c %s "$T/$1.sqlite" 2>/dev/null) bytes; $(grep RESULT "$L/$1.profile.log" | cut -c1-300)"
  echo "nsys profile $FLAGS -o $1 python3 $ARGS" > "$L/$1.COMMAND"
  cp "$T/$1.sqlite" "$OUT/" 2>/dev/null
}
capture backtrace_decode 24 110
if [ "$(stat -c %s "$T/backtrace_decode.sqlite" 2>/dev/null || echo 0)" -gt 3000000 ]; then capture backtrace_decode_small 10 70; fi
tail -5 "$L/backtrace_decode.profile.log"
# the kernel and skip count the trace gives for the 6th measured step (index 5)
python3 - "$T/backtrace_decode.sqlite" > "$L/ncu_target.txt" <<'EOF'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
top = db.execute("""SELECT s.value, d.value, sum(k.end - k.start) t FROM CUPTI_ACTIVITY_KIND_KERNEL k
  JOIN StringIds s ON s.id = k.shortName JOIN StringIds d ON d.id = k.demangledName GROUP BY 1 ORDER BY t DESC LIMIT 5""").fetchall()
base = next((b for b, full, _ in top if b != full), top[0][0])
steps = [r[0] for r in db.execute("SELECT n.start FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId "
                                  "WHERE coalesce(n.text, s.value) = 'step' ORDER BY n.start")]
k = db.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName "
               "WHERE s.value = ? AND k.start < ?", (base, steps[5])).fetchone()[0]
print(re.escape(base), k, len(steps))
EOF
read -r BASE SKIP NSTEPS < "$L/ncu_target.txt" || { echo "no ncu target"; BASE=""; }
[ -n "$BASE" ] && echo "ncu target: ^$BASE\$ skip $SKIP (of $NSTEPS measured steps)"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
"$NCU" --version > "$L/ncu_version.txt" 2>&1
[ -n "$BASE" ] && ( cd /tmp && timeout 90 "$NCU" --profile-from-start off --kernel-name "regex:^$BASE\$" --launch-skip "$SKIP" --launch-count 1 \
    --set full -f -o /tmp/ncu_val -- python3 /tmp/wl/sync_decode.py --layers 4 --warmup 1 --iters 2 --steps 24 --keep-mb 4 \
    --nvtx --cuda-profiler-capture --print-steps ) > "$L/ncu_run.log" 2>&1
echo "ncu rc=$?; slowest steps: $(grep '^STEP' "$L/ncu_run.log" | sort -k3 -n -r | head -3 | tr '\n' ';')"
"$NCU" -i /tmp/ncu_val.ncu-rep --page raw --csv --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed > "$L/ncu_import.csv" 2>&1
head -c 1500 "$L/ncu_import.csv"; echo
tar czf "$OUT/logs.tgz" -C "$L" .
ls -la "$OUT"

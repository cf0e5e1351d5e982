#!/bin/sh
# Fake binary for fault injection: answers --version/--help like the real llama-server b11434
# (the recorded fixture). FAKE_RPC=absent: a build whose help lists no --rpc. FAKE_RPC=unsupported:
# a build that lists --rpc but was made without -DGGML_RPC=ON (b11434's own words when given one).
# It never serves: anything else exits 1.
fixtures="$(dirname "$0")/../fixtures/help"
case "$1" in
  --version) cat "$fixtures/b11434.version"; exit 0 ;;
  --help)
    if [ "${FAKE_RPC:-}" = absent ]; then grep -v '^--rpc ' "$fixtures/b11434.help"; else cat "$fixtures/b11434.help"; fi
    exit 0 ;;
  --list-devices) printf 'Available devices:\n  (none)\n'; exit 0 ;;
  --rpc)
    echo 'error while handling argument "--rpc": RPC not supported in this build' >&2; exit 1 ;;
esac
echo "fake llama-server: error: this fake never serves" >&2
exit 1

#!/bin/sh
# Fake binary for fault injection: the b11434 build (its recorded --version/--help) on a machine
# with the devices in $FAKE_DEVICES, ';'-separated, each as --list-devices prints it, e.g.
# "CUDA0: NVIDIA H200 (143771 MiB, 139000 MiB free)": a GPU where the test machine has none.
# It never serves: anything else exits 1.
fixtures="$(dirname "$0")/../fixtures/help"
case "$1" in
  --version) cat "$fixtures/b11434.version"; exit 0 ;;
  --help) cat "$fixtures/b11434.help"; exit 0 ;;
  --list-devices)
    echo 'Available devices:'
    if [ -z "${FAKE_DEVICES:-}" ]; then echo '  (none)'; else printf '%s\n' "$FAKE_DEVICES" | tr ';' '\n' | sed 's/^/  /'; fi
    exit 0 ;;
esac
echo "fake llama-server: error: this fake never serves" >&2
exit 1

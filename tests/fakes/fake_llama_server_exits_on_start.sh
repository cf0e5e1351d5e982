#!/bin/sh
# Fake binary for fault injection: answers --version/--help exactly like the real llama-server
# b11434 (the recorded fixture), but exits 1 whenever it is started to serve.
fixtures="$(dirname "$0")/../fixtures/help"
case "$1" in
  --version) cat "$fixtures/b11434.version"; exit 0 ;;
  --help) cat "$fixtures/b11434.help"; exit 0 ;;
esac
echo "fake llama-server: loading model"
echo "fake llama-server: error: this fake always exits with code 1 while loading" >&2
exit 1

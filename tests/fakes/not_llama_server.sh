#!/bin/sh
# Fake binary for fault injection: something that is not llama-server at all.
# It answers every invocation (including --version and --help) with unrelated text.
echo "not-llama-server 1.0: I only print this line"
exit 0

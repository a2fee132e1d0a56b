#!/usr/bin/env bash
# Run every headnode test: unit, golden files, CLI, and (as root) the
# network-namespace integration tests. Sets up its own dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then
    bash tests/setup.sh
else
    echo "tests/run.sh: not root, so tests that need network namespaces will skip"
fi
cargo build --quiet --all-targets
cargo test --all-targets 2>&1 | tee /tmp/headnode-test.log
[[ $(id -u) -ne 0 ]] || bash tests/deb.sh   # the .deb in a fresh Debian 12 root
# IPVS on a real IPVS kernel: the build hosts have no ip_vs, so boot one.
if [[ $(id -u) -eq 0 ]]; then
    bash tests/vm/run.sh origin
else
    echo "tests/run.sh: not root, skipping the IPVS VM test (tests/vm/run.sh)"
fi

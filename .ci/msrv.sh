#!/usr/bin/env bash
# The minimum Rust version (Cargo.toml rust-version) is real: no dependency
# needs a newer compiler (from cargo metadata), and clippy's incompatible_msrv
# lint (on in `cargo clippy -D warnings`, which reads rust-version) flags std
# APIs newer than it. With that toolchain installed it is also built with it.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[[ -n $msrv ]] || { echo "msrv: Cargo.toml has no rust-version"; exit 1; }
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))
msrv = version(sys.argv[1])
meta = json.load(sys.stdin)
deps = {n["id"]: n for n in meta["resolve"]["nodes"]}
pkgs = {p["id"]: p for p in meta["packages"]}
# What a build of headnode compiles: its normal and build dependencies.
root, seen, todo = meta["resolve"]["root"], set(), [meta["resolve"]["root"]]
while todo:
    i = todo.pop()
    if i in seen:
        continue
    seen.add(i)
    for d in deps[i]["deps"]:
        if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
            todo.append(d["pkg"])
newer = []
for i in seen:
    rv = pkgs[i].get("rust_version")
    if rv and version(rv) > msrv:
        p = pkgs[i]
        newer.append(p["name"] + " " + p["version"] + " needs " + rv)
if newer:
    sys.exit("msrv: rust-version " + sys.argv[1] + " is too old:\n  " + "\n  ".join(sorted(newer)))
print(f"msrv: {len(seen)} crates build with Rust {sys.argv[1]}")
' "$msrv"
if rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
    cargo "+$msrv" check --locked --all-targets
else
    echo "msrv: toolchain $msrv not installed; relying on clippy's incompatible_msrv"
fi

#!/usr/bin/env bash
# Build the headnode .deb: a static musl binary, its man pages and shell
# completions (rendered by `headnode generate` from the CLI definition), and
# the metadata in Cargo.toml's [package.metadata.deb]. Prints the .deb's path
# as the last line. Needs: rustup (or the musl target installed), cargo-deb
# (installed with `cargo install cargo-deb --locked` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl

if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
fi
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked >&2

cargo build --release --locked --target "$target" >&2
bin=target/$target/release/headnode

assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions" "$assets/examples"
"$bin" generate man "$assets/man" >/dev/null
# Debian policy: man pages gzip -9, without a timestamp (-n) so builds repeat.
gzip -9n "$assets"/man/*.8 "$assets"/man/*.5
# The README's config reference, every key with its default.
"$bin" generate example "$assets/examples" >/dev/null
for shell in bash zsh fish; do
    "$bin" generate "$shell" "$assets/completions" >/dev/null
done

# Debian wants its own changelog format; the real one is CHANGELOG.md, shipped
# next to it. Dated by the last commit so that rebuilds are identical.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -1)
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat >"$assets/changelog.Debian" <<CHANGES
headnode ($version-1) unstable; urgency=medium

  * Upstream release $version; see /usr/share/doc/headnode/changelog.gz.

 -- $maintainer  $date
CHANGES

# cargo-deb prints the path of the package it wrote.
deb=$(cargo deb --no-build --target "$target" | tail -1)
echo "headnode binary: $(stat -c %s "$bin") bytes (static, stripped)" >&2
echo "$deb"

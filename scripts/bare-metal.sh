#!/usr/bin/env bash
# Builds mpc-core, mpc-nn and mpc-transformer for a bare-metal Cortex-M target (no operating
# system, no std: only core and alloc), proving the no_std promise on a target where std does not
# exist. rustup's targets are not reachable here, so the standard library is built from source
# with Debian's rustc-web and rust-web-src, installed first if missing.
#   scripts/bare-metal.sh [TARGET]    (default thumbv7em-none-eabihf)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-thumbv7em-none-eabihf}"
rustc=/usr/bin/rustc
if [ ! -x "$rustc" ] || [ ! -d /usr/lib/rustlib/src/rust/library/core ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "installing Debian's rustc-web and rust-web-src ..." >&2
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq rustc-web rust-web-src >&2
fi
echo "$("$rustc" --version), target $target" >&2
for crate in mpc-core mpc-nn mpc-transformer; do
  RUSTC_BOOTSTRAP=1 RUSTC="$rustc" CARGO_TARGET_DIR=target/bare-metal \
    cargo build --quiet -Zbuild-std=core,alloc --target "$target" -p "$crate" --no-default-features
  echo "$crate: built for $target (core + alloc only)"
done

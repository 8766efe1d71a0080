#!/bin/bash
# build.sh DIR [cmake options] - configure and build ftuned into DIR with
# warnings as errors (FT_WERROR), in the build type a plain `cmake -S . -B DIR`
# gets (RelWithDebInfo) unless an option names another.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
cmake -S . -B "$dir" -DFT_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"

#!/bin/bash
# setup.sh - install the Debian 12 packages that ftuned needs to build,
# test and run. Idempotent: apt-get skips what is already installed.
set -euo pipefail

packages=(
	build-essential cmake pkg-config git
	libnng-dev libprotobuf-c-dev protobuf-c-compiler
	libopenblas-dev libsodium-dev libcivetweb-dev
	libsqlite3-dev libjansson-dev libpcre2-dev libutf8proc-dev zlib1g-dev
	curl clang systemd sqlite3 jq openssl python3 passwd util-linux
	dict-gcide dict-foldoc
	chromium nodejs npm
)
# A tool may come from elsewhere than Debian (a NodeSource node with its own
# npm, say): then its command is there and its Debian package would conflict.
declare -A provides=([nodejs]=node [npm]=npm [chromium]=chromium)

missing=()
for p in "${packages[@]}"; do
	if [ -n "${provides[$p]:-}" ] && command -v "${provides[$p]}" >/dev/null; then
		continue
	fi
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all packages present"
	exit 0
fi
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

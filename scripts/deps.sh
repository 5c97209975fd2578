#!/usr/bin/env bash
# Install what building and testing vmm needs, from Debian's packages,
# only when something is missing. Used by `make test`, `make demo`, `make bench`;
# with package names as arguments it installs those instead (scripts/mkrootfs).
set -euo pipefail

pkgs=(build-essential pkg-config linux-libc-dev liburing-dev libaio-dev
      libfdt-dev libcmocka-dev libseccomp-dev libjansson-dev qemu-system-x86 busybox-static
      cpio xz-utils zstd kmod e2fsprogs python3 clang libclang-rt-14-dev
      clang-format shellcheck zlib1g-dev liblzma-dev libzstd-dev nettle-dev passt)
if [ $# -gt 0 ]; then
	pkgs=("$@")
fi

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

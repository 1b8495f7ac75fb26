#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# deps.sh - install the Debian packages braid's build, tests and benches
# need, when they are missing.
#
# Usage: scripts/deps.sh   (also run by `make deps`, `make demo` and CI)
#
# Required packages (build and `make test`; cmake for the test that
# builds a program against an installed braid with find_package) are
# checked first; optional groups (cross-architecture check, bench peers,
# bench tools, docs: Doxygen for `make docs` and the man pages; mpi:
# Open MPI for libbraid-mpi and its tests; mpi-peers: mpi4py and Dask for
# the cluster benchmark; faults: libfiu and fiu-run for the fault sweep,
# make test-faults; fuzz: the libFuzzer targets of `make fuzz`; soak: wrk
# and gdb for `make soak`, which make test runs) after. Each
# package is checked with dpkg-query, so when everything is present the
# script prints nothing, makes no network access and exits 0 at once.
#
# When something is missing:
#   - as root: `apt-get update`, then one `apt-get install` for the
#     required packages, which must succeed, then one per optional group,
#     whose failure (say, a package this release does not carry, or no
#     network when only optional packages are missing) is only a warning;
#   - otherwise: print the command to run with sudo and exit 1.
#
# Written for Debian 12 (apt and dpkg). On other distributions, install
# the equivalents of the lists below by hand.

set -eu

required="build-essential pkg-config liburing-dev libcriterion-dev
	clang-format valgrind cmake"

# Optional groups, one per line: a name, a colon, then its packages.
optional_groups="cross:gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
peers:libtbb-dev golang-go libuv1-dev wrk nginx
bench-tools:python3 gnuplot-nox
docs:doxygen
mpi:libopenmpi-dev openmpi-bin
mpi-peers:python3-mpi4py python3-distributed
faults:libfiu-dev fiu-utils gdb
fuzz:clang libclang-rt-14-dev
soak:wrk gdb python3"

# is_installed PKG: true if dpkg says PKG is installed. qemu-user is also
# satisfied by qemu-user-static, which provides qemu-aarch64-static.
is_installed()
{
	case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" in
	*" ok installed") return 0 ;;
	esac
	if [ "$1" = qemu-user ]; then
		is_installed qemu-user-static
		return
	fi
	return 1
}

# missing PKG...: print the packages of the list that are not installed.
missing()
{
	out=""
	for pkg in "$@"; do
		is_installed "$pkg" || out="$out $pkg"
	done
	echo "${out# }"
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: no dpkg-query; this script knows Debian only." >&2
	# shellcheck disable=SC2086
	echo "deps.sh: install by hand:" $required >&2
	exit 1
fi

# shellcheck disable=SC2086 # word splitting of the lists is intended
miss_required=$(missing $required)
miss_optional=""
miss_groups=""
while IFS=: read -r group pkgs; do
	# shellcheck disable=SC2086
	m=$(missing $pkgs)
	if [ -n "$m" ]; then
		miss_optional="$miss_optional $m"
		miss_groups="$miss_groups$group:$m
"
	fi
done <<EOF
$optional_groups
EOF
miss_optional=${miss_optional# }

if [ -z "$miss_required" ] && [ -z "$miss_optional" ]; then
	exit 0
fi

all_missing="$miss_required${miss_required:+ }$miss_optional"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: $all_missing" >&2
	echo "deps.sh: install them with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $all_missing" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install()
{
	apt-get install -y --no-install-recommends "$@"
}

echo "deps.sh: installing: $all_missing"
if ! apt-get update; then
	# Stale lists may still do for what is already cached; an optional
	# group that cannot be found is only a warning below anyway.
	[ -n "$miss_required" ] && exit 1
	echo "deps.sh: warning: apt-get update failed; trying the optional" \
	     "packages with the current lists." >&2
fi

if [ -n "$miss_required" ]; then
	# shellcheck disable=SC2086
	apt_install $miss_required
fi

status=0
while IFS=: read -r group pkgs; do
	[ -n "$group" ] || continue
	# shellcheck disable=SC2086
	if ! apt_install $pkgs; then
		echo "deps.sh: warning: could not install the optional $group" \
		     "packages ($pkgs); the parts of braid that use them will" \
		     "be skipped." >&2
		status=1
	fi
done <<EOF
$miss_groups
EOF

if [ "$status" -ne 0 ]; then
	echo "deps.sh: required packages are installed; some optional ones" \
	     "are not (see the warnings above)." >&2
fi
exit 0

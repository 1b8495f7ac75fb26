#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# install_check.sh - does braid install like a library should? Run by
# `make test` (target test-install in tests/tests.mk) from the top of the
# tree, with MAKE, CC and VARIANT in the environment.
#
#   1. braid.h: every comment directly above a declaration opens with
#      /** (Doxygen reads no other; a plain /* there would leave the
#      declaration out of the man pages).
#   2. make install DESTDIR=<tmp> PREFIX=/usr, a staged installation.
#   3. tests/install/consumer.c built with
#      pkg-config --define-variable=prefix=<tmp>/usr and run: it must
#      load the staged libbraid.so and agree with it on the version.
#      A release libbraid.a (fat LTO objects) also links into it with
#      -flto, and the program runs.
#   4. The same program through CMake: find_package(braid CONFIG) with
#      CMAKE_PREFIX_PATH=<tmp>/usr, linked with braid::braid and with
#      braid::braid_static; versions of another major version, or newer
#      than the installed one, are refused.
#   5. With Doxygen: make docs gives no warning, and man finds br_spawn,
#      braid and a section page among the installed pages. Without it,
#      make install must say that it skipped them, and this step is
#      skipped with a note.
#   6. make uninstall leaves no file behind.
#
# Each step prints one line; the first failure ends the script with
# status 1 and prints what it saw.

set -euo pipefail

MAKE=${MAKE:-make}
CC=${CC:-cc}
VARIANT=${VARIANT:-release}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/braid-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage
prefix=$stage/usr

say()
{
	echo "  INSTALL $*"
}

fail()
{
	echo "  FAILED  install_check: $*" >&2
	exit 1
}

# expect_line FILE LINE: FILE has a line that is exactly LINE.
expect_line()
{
	grep -qxF -- "$2" "$1" || {
		echo "--- $1:" >&2
		cat "$1" >&2
		fail "expected the line '$2'"
	}
}

version=$(sed -n 's/^#define BR_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' \
	include/braid.h | paste -sd.)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
[ -n "$major" ] && [ -n "$minor" ] || fail "no version in include/braid.h"

# 1. Doc-comment openers. A plain /* comment may stand above a
# declaration only as the heading of #defines that carry their own /**<.
bad=$(awk '
	pending {
		if ($0 !~ /^[ \t]*($|\/\*|\*|#[ \t]*(if|ifdef|ifndef|endif|else|include)|}|extern)/ &&
		    !($0 ~ /^#define/ && $0 ~ /\/\*\*</))
			print FILENAME ":" FNR ": " $0
		pending = 0
	}
	/^[ \t]*\/\*/ {
		plain = $0 !~ /^[ \t]*\/\*\*/ && $0 !~ /clang-format/
		start = FNR
	}
	/\*\// {
		if (plain)
			pending = start
		plain = 0
	}
	/[^ \t].*\/\*[^*]/ && !/^[ \t]*\/\*/ && !/^#endif/ {
		print FILENAME ":" FNR ": " $0
	}' include/braid.h)
if [ -n "$bad" ]; then
	echo "$bad" >&2
	fail "these declarations have a /* comment, which Doxygen does not read: use /** above them (or /**< after them)"
fi
say "braid.h: every declaration comment opens with /**"

# 2. Staged installation.
if ! $MAKE --no-print-directory VARIANT="$VARIANT" install \
	DESTDIR="$stage" PREFIX=/usr >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	fail "make install DESTDIR=... PREFIX=/usr failed"
fi
for f in include/braid.h lib/libbraid.a "lib/libbraid.so.$version" \
	lib/libbraid.so lib/pkgconfig/braid.pc \
	lib/cmake/braid/braid-config.cmake \
	lib/cmake/braid/braid-config-version.cmake; do
	[ -e "$prefix/$f" ] || fail "make install did not install $f"
done
say "make install DESTDIR=$stage PREFIX=/usr"

# 3. pkg-config, relocated to the staging directory.
pc=(pkg-config --define-variable=prefix="$prefix")
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cflags=$("${pc[@]}" --cflags braid)
libs=$("${pc[@]}" --libs braid)
static_libs=$("${pc[@]}" --static --libs braid)
case " $cflags " in
*" -I$prefix/include "*) ;;
*) fail "pkg-config --cflags gave '$cflags', not -I$prefix/include" ;;
esac
case " $libs " in
*" -L$prefix/lib "*"-lbraid "*) ;;
*) fail "pkg-config --libs gave '$libs', not -L$prefix/lib -lbraid" ;;
esac
case " $static_libs " in
*" -luring "*) ;;
*) fail "pkg-config --static --libs gave '$static_libs', without -luring" ;;
esac
# shellcheck disable=SC2086 # the flags are words
$CC -std=gnu11 -Wall -Wextra -Werror -o "$tmp/consumer_pc" tests/install/consumer.c $cflags $libs
LD_LIBRARY_PATH=$prefix/lib "$tmp/consumer_pc" >"$tmp/pc.out" ||
	fail "the program built with pkg-config failed"
expect_line "$tmp/pc.out" "value 144"
expect_line "$tmp/pc.out" "version $version"
expect_line "$tmp/pc.out" "library $prefix/lib/libbraid.so.$major"
say "pkg-config --define-variable=prefix=$prefix: built, ran on the staged library"

# 3b. A release libbraid.a holds GCC's intermediate code too: a program
# linked with -flto must build against it and run. (grep reads it all:
# with -q it would stop early, and pipefail would count readelf's broken
# pipe as a failure.)
if readelf -S "$prefix/lib/libbraid.a" 2>/dev/null | grep 'gnu\.lto_' >/dev/null; then
	# shellcheck disable=SC2086 # the flags are words
	$CC -std=gnu11 -O2 -flto=auto -Wall -Wextra -Werror -o "$tmp/consumer_lto" \
		tests/install/consumer.c $cflags "$prefix/lib/libbraid.a" \
		${static_libs//-lbraid/}
	"$tmp/consumer_lto" >"$tmp/lto.out" ||
		fail "the program linked with -flto against libbraid.a failed"
	expect_line "$tmp/lto.out" "value 144"
	expect_line "$tmp/lto.out" "version $version"
	say "libbraid.a with -flto: built and ran"
fi

# 4. CMake.
if ! command -v cmake >/dev/null 2>&1; then
	fail "no cmake (scripts/deps.sh installs it)"
fi
# cmake_config DIR WANT: configure tests/install in DIR asking for WANT.
cmake_config()
{
	cmake -S tests/install -B "$1" -DCMAKE_C_COMPILER="$CC" \
		-DCMAKE_PREFIX_PATH="$prefix" -DBRAID_WANT="$2" \
		-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$1.log" 2>&1
}
cm=$tmp/cmake
cmake_config "$cm" "$major.$minor" || {
	cat "$cm.log" >&2
	fail "cmake could not configure a project with find_package(braid $major.$minor CONFIG)"
}
expect_line "$cm/braid_found.txt" "dir $prefix/lib/cmake/braid"
expect_line "$cm/braid_found.txt" "version $version"
cmake --build "$cm" >"$cm.build.log" 2>&1 || {
	cat "$cm.build.log" >&2
	fail "the CMake project did not build"
}
"$cm/consumer" >"$tmp/cm.out" || fail "the program linked with braid::braid failed"
expect_line "$tmp/cm.out" "value 144"
expect_line "$tmp/cm.out" "library $prefix/lib/libbraid.so.$major"
"$cm/consumer_static" >"$tmp/cms.out" ||
	fail "the program linked with braid::braid_static failed"
expect_line "$tmp/cms.out" "value 144"
expect_line "$tmp/cms.out" "library $cm/consumer_static"
for want in "$((major + 1)).0" "$major.$((minor + 1))"; do
	if cmake_config "$tmp/cmake-$want" "$want"; then
		fail "find_package(braid $want) accepted version $version"
	fi
done
say "CMake find_package(braid $major.$minor CONFIG): braid::braid and braid::braid_static built and ran; $((major + 1)).0 and $major.$((minor + 1)) refused"

# 5. Man pages.
if command -v doxygen >/dev/null 2>&1; then
	$MAKE --no-print-directory -s docs 2>/dev/null
	if [ -s build/docs/warnings.log ]; then
		cat build/docs/warnings.log >&2
		fail "Doxygen warned about braid.h's comments"
	fi
	man_dir=$prefix/share/man
	for page in br_spawn br_mutex_lock_for braid_sync braid; do
		[ -f "$man_dir/man3/$page.3" ] ||
			fail "make install did not install man page $page(3)"
	done
	MANWIDTH=80 man -M "$man_dir" -P cat br_spawn >"$tmp/man.out" 2>/dev/null ||
		fail "man br_spawn failed"
	grep -q 'br_spawn - create a task' "$tmp/man.out" ||
		fail "man br_spawn does not show br_spawn's contract"
	MANWIDTH=80 man -M "$man_dir" -P cat braid_sync >"$tmp/man.out" 2>/dev/null ||
		fail "man braid_sync failed"
	grep -q 'Common rules' "$tmp/man.out" ||
		fail "man braid_sync does not show the section's common rules"
	MANWIDTH=80 man -M "$man_dir" -P cat braid >"$tmp/man.out" 2>/dev/null ||
		fail "man braid failed"
	grep -q 'Conventions used by every declaration' "$tmp/man.out" ||
		fail "man braid does not show braid.h's conventions"
	say "man pages: no Doxygen warning; man br_spawn, braid_sync and braid show their text"
else
	grep -q 'SKIP    man pages' "$tmp/install.log" ||
		fail "make install neither installed man pages nor said it skipped them"
	echo "  SKIP    man pages: no doxygen (apt-get install doxygen; scripts/deps.sh installs it)"
fi

# 6. Uninstall.
$MAKE --no-print-directory VARIANT="$VARIANT" uninstall DESTDIR="$stage" \
	PREFIX=/usr >"$tmp/uninstall.log" 2>&1 || {
	cat "$tmp/uninstall.log" >&2
	fail "make uninstall failed"
}
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
say "make uninstall removed every file"

#!/usr/bin/env bash
# Builds LazyFS (a FUSE file system that keeps every write in its own cache until
# fsync and, on "lazyfs::clear-cache", drops what was not synced: a power cut).
# Upstream: github.com/dsrhaslab/lazyfs (MIT, see LICENSE); CMake changed only to use
# Debian's toml11 and spdlog instead of downloading them.
# Usage: build.sh [BUILD_DIR]   (default $LAZYFS_BUILD_DIR or /tmp/lazyfs-build; prints the lazyfs binary path)
set -e
SRC="$(dirname "$(readlink -f "$0")")"
B=${1:-${LAZYFS_BUILD_DIR:-/tmp/lazyfs-build}}
mkdir -p "$(dirname "$B")"
exec 9>"$B.lock"; flock 9   # tests mount in parallel: one build at a time
if [ ! -x "$B/lazyfs/build/lazyfs" ]; then
  export DEBIAN_FRONTEND=noninteractive
  dpkg -s libfuse3-dev fuse3 cmake g++ libtoml11-dev libspdlog-dev >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq libfuse3-dev fuse3 cmake g++ libtoml11-dev libspdlog-dev >/dev/null; }
  rm -rf "$B"; mkdir -p "$B"; cp -r "$SRC/lazyfs" "$SRC/libs" "$B/"
  (cd "$B/libs/libpcache" && ./build.sh) >"$B/build.log" 2>&1
  (cd "$B/lazyfs" && ./build.sh) >>"$B/build.log" 2>&1 || { tail -20 "$B/build.log" >&2; exit 1; }
fi
echo "$B/lazyfs/build/lazyfs"

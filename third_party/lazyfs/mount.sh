#!/usr/bin/env bash
# Mounts LazyFS at MOUNT_DIR over ROOT_DIR with its fault FIFO at FIFO (and FIFO.done,
# where LazyFS answers once a command is done). Prints the FUSE process id last.
#   echo lazyfs::clear-cache > FIFO; read -r _ < FIFO.done   # drop every unsynced write
#   fusermount3 -u MOUNT_DIR                                  # unmount
# Usage: mount.sh MOUNT_DIR ROOT_DIR FIFO
# LAZYFS_CACHE_SIZE (default 4GB): LazyFS allocates and touches its whole cache
# at start (~3 s and that much RSS for 4GB); every byte written to the mount
# stays in it, synced or not, so size it for the data the test writes.
# Returns once the file system is mounted (the FIFOs appear ~3 s earlier, while
# the cache is still being allocated: writes then would land under the mount).
set -e
HERE="$(dirname "$(readlink -f "$0")")"
BIN=$("$HERE/build.sh")
M=$1 R=$2 F=$3
[ -n "$F" ] || { echo "usage: mount.sh MOUNT_DIR ROOT_DIR FIFO" >&2; exit 2; }
grep -q "^user_allow_other" /etc/fuse.conf 2>/dev/null || echo user_allow_other >> /etc/fuse.conf
mkdir -p "$M" "$R"; rm -f "$F" "$F.done"
cat > "$F.toml" <<TOML
[faults]
fifo_path="$F"
fifo_path_completed="$F.done"
[cache]
apply_eviction=false
[cache.simple]
custom_size="${LAZYFS_CACHE_SIZE:-4GB}"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile="$F.log"
TOML
LD_LIBRARY_PATH="$(dirname "$BIN")/../../libs/libpcache/build" nohup "$BIN" "$M" --config-path "$F.toml" \
  -o allow_other -o modules=subdir -o subdir="$R" -f >"$F.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -p "$F" ] && [ -p "$F.done" ] && break; sleep 0.1; done
[ -p "$F" ] || { cat "$F.out" >&2; echo "LazyFS did not start" >&2; exit 1; }
MA=$(readlink -f "$M")
for _ in $(seq 600); do
  awk -v m="$MA" '$2 == m && $3 == "fuse.lazyfs" { found = 1 } END { exit !found }' /proc/mounts && break
  kill -0 $pid 2>/dev/null || { cat "$F.out" >&2; echo "LazyFS exited before mounting" >&2; exit 1; }
  sleep 0.1
done
awk -v m="$MA" '$2 == m && $3 == "fuse.lazyfs" { found = 1 } END { exit !found }' /proc/mounts ||
  { cat "$F.out" >&2; echo "LazyFS did not mount $M within 60 s" >&2; kill $pid; exit 1; }
echo $pid

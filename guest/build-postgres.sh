#!/usr/bin/env bash
# Builds the PostgreSQL guest's disk: a minimal Debian bookworm root file system from Debian's packages (mmdebstrap,
# variant minbase, with postgresql-15), its cluster 15/main created by the package and configured to listen on the
# guest's network, as an ext4 file system in a qcow2 image. The guest boots the demo guest's kernel and initramfs
# (guest/build.sh) with root on this disk: the initramfs's init (thaw.app=postgres) mounts /dev/vda and starts PostgreSQL
# in it directly, without systemd.
#
#   guest/build-postgres.sh [--cache DIR] [--print-key]
#
# The result goes to DIR/guest-postgres/<key>/ (DIR defaults to $THAW_CACHE, else ~/.cache/thaw): rootfs.qcow2 and
# guest.json. <key> hashes this script, the suite's mirrors and the candidate versions of the packages that decide the
# guest (postgresql-15, postgresql-common, libpq5, libc6, the tools that build it). Package installation times, file
# system times and UUIDs are fixed (SOURCE_DATE_EPOCH, E2FSPROGS_FAKE_TIME, -U); initdb's database system identifier is
# not (PostgreSQL draws it from the clock and randomness), so two builds of one key differ in the cluster's control file
# and the files that carry it. A finished build is never rebuilt; it is published by renaming a complete temporary
# directory. Run as root (mmdebstrap's root mode, apt-get install of missing tools); needs no TTY and no network other
# than apt's. The last line printed on stdout is the result directory.
set -euo pipefail
export LC_ALL=C

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${THAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw}"
PRINT_KEY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --print-key) PRINT_KEY=1; shift ;;
    *) echo "guest/build-postgres.sh: unknown argument '$1', expected --cache DIR or --print-key" >&2; exit 2 ;;
  esac
done

SUITE=bookworm
MIRRORS=("deb http://deb.debian.org/debian $SUITE main" "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main")
DISK_MIB=1024
EPOCH=1700000000
FS_UUID=7a1e0000-0000-4000-8000-000000000015

die() { echo "guest/build-postgres.sh: $*" >&2; exit 1; }

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
VERSIONS=""
for pkg in postgresql-15 postgresql-common libpq5 libc6 mmdebstrap e2fsprogs qemu-utils; do
  v=$(candidate "$pkg")
  if { [ -z "$v" ] || [ "$v" = "(none)" ]; } && [ "$(id -u)" = 0 ]; then
    echo "guest/build-postgres.sh: apt has no $pkg; running apt-get update" >&2
    apt-get update -qq >&2 || true
    v=$(candidate "$pkg")
  fi
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "apt has no candidate version of $pkg; run 'apt-get update' as root (Debian $SUITE main must be in the apt sources)"
  VERSIONS="$VERSIONS $pkg=$v"
done

KEY=$( {
  sha256sum < "$GUEST_DIR/build-postgres.sh"
  printf '%s\n' "${MIRRORS[@]}"
  echo "$VERSIONS"
} | sha256sum | cut -c1-16)
if [ "$PRINT_KEY" = 1 ]; then echo "$KEY"; exit 0; fi

OUT="$CACHE/guest-postgres/$KEY"
if [ -f "$OUT/guest.json" ]; then
  echo "$OUT"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building the PostgreSQL guest needs root (mmdebstrap's root mode); run as root, or build once as root into \$THAW_CACHE"
missing=""
command -v mmdebstrap >/dev/null 2>&1 || missing="$missing mmdebstrap"
command -v mkfs.ext4 >/dev/null 2>&1 || missing="$missing e2fsprogs"
command -v qemu-img >/dev/null 2>&1 || missing="$missing qemu-utils"
if [ -n "$missing" ]; then
  echo "guest/build-postgres.sh: installing$missing" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 || die "apt-get install$missing failed"
fi

mkdir -p "$CACHE/guest-postgres"
WORK=$(mktemp -d "$CACHE/guest-postgres/.build-$KEY.XXXXXX")
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
echo "guest/build-postgres.sh: building the PostgreSQL guest's disk $KEY ($(echo $VERSIONS))" >&2

# 1. The root file system. The package's postinst creates the cluster 15/main (initdb, as the postgres user); the hook
# configures it: the guest's network (QEMU user networking: the host's forwarded connections come from 10.0.2.2), no TLS,
# a small memory footprint, logs on stderr (the console).
ROOTFS="$WORK/rootfs"
export SOURCE_DATE_EPOCH=$EPOCH
mmdebstrap --variant=minbase --mode=root --include=postgresql-15 \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='set -e
    conf="$1/etc/postgresql/15/main"
    [ -f "$conf/postgresql.conf" ] || { echo "the package created no cluster 15/main" >&2; exit 1; }
    cat > "$conf/conf.d/thaw.conf" <<CONF
listen_addresses = '"'"'*'"'"'
ssl = off
shared_buffers = 32MB
max_connections = 20
log_destination = stderr
logging_collector = off
log_min_messages = warning
CONF
    echo "host all all 10.0.2.2/32 trust" >> "$conf/pg_hba.conf"
    rm -f "$1"/etc/ssl/private/ssl-cert-snakeoil.key "$1"/etc/ssl/certs/ssl-cert-snakeoil.pem
    rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  "$SUITE" "$ROOTFS" "${MIRRORS[@]}" </dev/null >&2 || die "mmdebstrap failed"

# 2. The disk: ext4 filled from the tree (fixed UUID, hash seed and times), converted to qcow2 (only what is used).
RAW="$WORK/rootfs.raw"
truncate -s "${DISK_MIB}M" "$RAW"
E2FSPROGS_FAKE_TIME=$EPOCH mkfs.ext4 -q -F -L thaw-pg -U "$FS_UUID" -E "hash_seed=$FS_UUID" -d "$ROOTFS" "$RAW" \
  || die "mkfs.ext4 -d $ROOTFS failed"
qemu-img convert -q -f raw -O qcow2 "$RAW" "$WORK/rootfs.qcow2" || die "qemu-img convert failed"
USED_KIB=$(du -sk "$ROOTFS" | cut -f1)
rm -rf "$ROOTFS" "$RAW"

cat > "$WORK/guest.json" <<JSON
{
  "key": "$KEY",
  "suite": "$SUITE",
  "packages": "$(echo $VERSIONS)",
  "diskVirtualMiB": $DISK_MIB,
  "rootfsUsedKiB": $USED_KIB,
  "qcow2Bytes": $(stat -c %s "$WORK/rootfs.qcow2"),
  "qcow2Sha256": "$(sha256sum < "$WORK/rootfs.qcow2" | cut -d' ' -f1)"
}
JSON
chmod 0444 "$WORK/rootfs.qcow2"
trap - EXIT
if ! mv -T "$WORK" "$OUT" 2>/dev/null; then
  rm -rf "$WORK" # another build published the same key first
fi
echo "$OUT"

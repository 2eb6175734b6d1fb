#!/usr/bin/env bash
# Builds a disk that QEMU's default firmware (SeaBIOS) boots, for the guests Thaw saves without -kernel: an MBR (syslinux's
# mbr.bin) and one active FAT16 partition holding the demo guest's own kernel and initramfs (guest/build.sh) and a
# syslinux.cfg, made bootable by syslinux --install. Nothing is mounted: mkfs.fat and syslinux work on the image file at the
# partition's offset, mtools' mcopy fills it, and the partition table is written here (16 bytes, no partitioning tool).
#
#   guest/build-firmware-disk.sh --guest DIR [--cache DIR] [--print-key]
#
# --guest is a finished demo guest build (its vmlinuz and initrd.img). The result goes to DIR/guest-firmware/<key>/
# (DIR defaults to $THAW_CACHE, else ~/.cache/thaw): boot.img (raw) and guest.json. <key> hashes this script, the kernel and
# initramfs (their bytes, in that order), and the versions of syslinux, syslinux-common, mtools and dosfstools (apt's candidates; the missing ones are
# installed). The file system's serial and times are fixed (mkfs.fat --invariant, SOURCE_DATE_EPOCH, mcopy -m). A finished
# build is never rebuilt; it is published by renaming a complete temporary directory. The last line printed on stdout is the
# result directory.
set -euo pipefail
export LC_ALL=C

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${THAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw}"
PRINT_KEY=0
GUEST=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --guest) GUEST="$2"; shift 2 ;;
    --print-key) PRINT_KEY=1; shift ;;
    *) echo "guest/build-firmware-disk.sh: unknown argument '$1', expected --guest DIR, --cache DIR or --print-key" >&2; exit 2 ;;
  esac
done

die() { echo "guest/build-firmware-disk.sh: $*" >&2; exit 1; }
[ -n "$GUEST" ] || die "expected --guest DIR (a demo guest build: guest/build.sh), actual none"
for f in vmlinuz initrd.img; do [ -f "$GUEST/$f" ] || die "expected $GUEST/$f (a finished demo guest build), actual none"; done

# The kernel command line: the demo guest's userland, as with -kernel: wsbench on a small region (its ticks on ttyS0, the
# console), Thaw's agent on ttyS1.
APPEND="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init wsbench.total_mib=32 wsbench.ws_mib=8 wsbench.layout=contiguous"
EPOCH=1700000000
DISK_MIB=40
START=2048 # the partition's first sector (1 MiB), as partitioning tools align it
DISK_ID=0x7a1e0016

PACKAGES="syslinux syslinux-common mtools dosfstools"
# apt's candidate of every package, as pkg=version; a package apt does not know is left out.
candidates() { apt-cache policy $PACKAGES 2>/dev/null | awk '/^[^ ].*:$/ {p=substr($1, 1, length($1)-1)} /Candidate:/ && $2 != "(none)" {printf " %s=%s", p, $2}'; }
VERSIONS=$(candidates)
if [ "$(echo $VERSIONS | wc -w)" != "$(echo $PACKAGES | wc -w)" ] && [ "$(id -u)" = 0 ]; then
  echo "guest/build-firmware-disk.sh: apt lacks some of $PACKAGES; running apt-get update" >&2
  apt-get update -qq >&2 || true
  VERSIONS=$(candidates)
fi
[ "$(echo $VERSIONS | wc -w)" = "$(echo $PACKAGES | wc -w)" ] \
  || die "expected a candidate version of each of $PACKAGES, actual$VERSIONS; run 'apt-get update' as root"

KEY=$(cat "$GUEST_DIR/build-firmware-disk.sh" "$GUEST/vmlinuz" "$GUEST/initrd.img" <(echo "$VERSIONS") | sha256sum | cut -c1-16)
OUT="$CACHE/guest-firmware/$KEY"
[ "$PRINT_KEY" = 0 ] || { echo "$KEY"; exit 0; }
[ ! -f "$OUT/guest.json" ] || { echo "$OUT"; exit 0; } # a finished build

MBR=/usr/lib/syslinux/mbr/mbr.bin
missing=""
command -v syslinux >/dev/null 2>&1 || missing="$missing syslinux"
[ -f "$MBR" ] || missing="$missing syslinux-common"
command -v mcopy >/dev/null 2>&1 || missing="$missing mtools"
command -v mkfs.fat >/dev/null 2>&1 || missing="$missing dosfstools"
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || die "missing$missing; install them (apt-get install$missing) or run as root"
  echo "guest/build-firmware-disk.sh: installing$missing" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 || die "apt-get install$missing failed"
fi
[ "$(stat -c %s "$MBR")" = 440 ] || die "$MBR: expected 440 bytes of boot code, actual $(stat -c %s "$MBR")"

mkdir -p "$CACHE/guest-firmware"
WORK=$(mktemp -d "$CACHE/guest-firmware/.build-$KEY.XXXXXX")
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
echo "guest/build-firmware-disk.sh: building the firmware-booted disk $KEY ($(echo $VERSIONS))" >&2
export SOURCE_DATE_EPOCH=$EPOCH MTOOLS_SKIP_CHECK=1

IMG="$WORK/boot.img"
SECTORS=$(( DISK_MIB * 2048 - START ))
truncate -s "${DISK_MIB}M" "$IMG"
# 1. The file system, inside the partition: fixed serial and times.
mkfs.fat -F 16 --offset "$START" --invariant -n THAWBOOT "$IMG" $(( SECTORS / 2 )) >/dev/null || die "mkfs.fat failed"
FILES="$WORK/files"
mkdir "$FILES"
cp "$GUEST/vmlinuz" "$FILES/vmlinuz"
cp "$GUEST/initrd.img" "$FILES/initrd.img"
cat > "$FILES/syslinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND $APPEND
CFG
touch -d "@$EPOCH" "$FILES"/*
mcopy -m -i "$IMG@@$(( START * 512 ))" "$FILES/vmlinuz" "$FILES/initrd.img" "$FILES/syslinux.cfg" :: || die "mcopy failed"
# 2. SYSLINUX: its boot sector in the partition and ldlinux.sys/ldlinux.c32 in the file system (through mtools).
syslinux --install --offset $(( START * 512 )) "$IMG" || die "syslinux --install failed"
# 3. The MBR: syslinux's boot code, the disk identifier, one active FAT16 (LBA) partition, the boot signature.
le32() { printf "\\x$(printf %02x $(( $1 & 255 )))\\x$(printf %02x $(( ($1 >> 8) & 255 )))\\x$(printf %02x $(( ($1 >> 16) & 255 )))\\x$(printf %02x $(( ($1 >> 24) & 255 )))"; }
{
  cat "$MBR"
  le32 $(( DISK_ID ))
  printf '\x00\x00'
  printf '\x80\xfe\xff\xff\x0e\xfe\xff\xff' # active; CHS unused (0xfeffff: LBA); type 0x0e: FAT16, LBA
  le32 "$START"
  le32 "$SECTORS"
  head -c 48 /dev/zero # the three other entries: empty
  printf '\x55\xaa'
} > "$WORK/mbr"
[ "$(stat -c %s "$WORK/mbr")" = 512 ] || die "the MBR came out as $(stat -c %s "$WORK/mbr") bytes, expected 512"
dd if="$WORK/mbr" of="$IMG" conv=notrunc status=none
rm -rf "$FILES" "$WORK/mbr"

cat > "$WORK/guest.json" <<JSON
{
  "key": "$KEY",
  "guest": "$(basename "$GUEST")",
  "packages": "$(echo $VERSIONS)",
  "kernelCommandLine": "$APPEND",
  "diskMiB": $DISK_MIB,
  "sha256": "$(sha256sum < "$IMG" | cut -d' ' -f1)"
}
JSON
chmod 0444 "$IMG"
# Published whole by a rename; when another build published the same key first, this one is dropped (the trap).
mv -T "$WORK" "$OUT" 2>/dev/null || true
echo "$OUT"

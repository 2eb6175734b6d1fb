#!/usr/bin/env bash
# Builds the demo guest: the Debian cloud kernel (from its package, with the modules the guest
# needs), a busybox initramfs, the project's static C workloads (wsbench, memsum, tcpstream, freemem), and Redis from
# Debian's packages with the shared libraries it needs (a real application for the benchmarks).
#
#   guest/build.sh [--cache DIR] [--print-key]
#
# The result goes to DIR/guest/<key>/ (DIR defaults to $THAW_CACHE, else ~/.cache/thaw), where
# <key> hashes every input: this script, init, modules.list, the C sources, the exact kernel
# and Redis package versions, the busybox binary and the compiler version. A finished build is never
# rebuilt; it is published by renaming a complete temporary directory, so a crash leaves no
# half-built guest. The last line printed on stdout is the result directory.
set -euo pipefail
export LC_ALL=C

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${THAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw}"
PRINT_KEY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --print-key) PRINT_KEY=1; shift ;;
    *) echo "guest/build.sh: unknown argument '$1', expected --cache DIR or --print-key" >&2; exit 2 ;;
  esac
done

KERNEL_META=linux-image-cloud-amd64
BUSYBOX=/bin/busybox

die() { echo "guest/build.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is missing; run ./thaw doctor (it installs $2)"; }
need gcc gcc
need cpio cpio
need apt-get apt
need dpkg-deb dpkg
need readelf binutils
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing; run ./thaw doctor (it installs busybox-static)"
readelf -d "$BUSYBOX" 2>/dev/null | grep -q NEEDED && die "$BUSYBOX is not statically linked; install busybox-static"

# The kernel package the meta package points at, e.g. linux-image-6.1.0-56-cloud-amd64 6.1.192-2.
resolve_kernel() {
  apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
KERNEL_PKG=$(resolve_kernel || true)
if [ -z "$KERNEL_PKG" ] && [ "$(id -u)" = 0 ]; then
  echo "guest/build.sh: apt has no $KERNEL_META; running apt-get update" >&2
  apt-get update -qq >&2 || true
  KERNEL_PKG=$(resolve_kernel || true)
fi
[ -n "$KERNEL_PKG" ] || die "apt knows no $KERNEL_META; run 'apt-get update' as root (Debian bookworm main must be in the apt sources)"
KERNEL_VERSION=$(apt-cache policy "$KERNEL_PKG" | awk '/Candidate:/ {print $2}')
[ -n "$KERNEL_VERSION" ] && [ "$KERNEL_VERSION" != "(none)" ] || die "apt has no candidate version of $KERNEL_PKG"

# Redis: the server (redis-check-rdb is the same binary; it serves when called redis-server), the
# client, and every package their libraries come from. Versions are apt's candidates.
APP_PACKAGES="redis-tools libjemalloc2 liblzf1 libatomic1 libssl3 libsystemd0 libcap2 libgcrypt20 liblz4-1 liblzma5 libzstd1 libgpg-error0 libstdc++6 libgcc-s1 libc6"
APP_VERSIONS=""
for pkg in $APP_PACKAGES; do
  v=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "apt has no candidate version of $pkg (Redis for the application guest); run 'apt-get update' as root"
  APP_VERSIONS="$APP_VERSIONS $pkg=$v"
done

KEY=$( {
  cd "$GUEST_DIR"
  for f in build.sh init modules.list src/*.c; do
    [ -f "$f" ] || die "build input $GUEST_DIR/$f is missing"
    echo "$f"; sha256sum < "$f"
  done
  echo "$KERNEL_PKG=$KERNEL_VERSION"
  echo "$APP_VERSIONS"
  sha256sum < "$BUSYBOX"
  gcc --version | head -1
} | sha256sum | cut -c1-16)
if [ "$PRINT_KEY" = 1 ]; then echo "$KEY"; exit 0; fi

OUT="$CACHE/guest/$KEY"
if [ -f "$OUT/guest.json" ]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE/guest" "$CACHE/debs"
WORK=$(mktemp -d "$CACHE/guest/.build-$KEY.XXXXXX")
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
echo "guest/build.sh: building guest $KEY ($KERNEL_PKG $KERNEL_VERSION)" >&2

# 1. The kernel package, downloaded once (apt verifies it against the signed archive index).
DEB=$(ls "$CACHE/debs/${KERNEL_PKG}_${KERNEL_VERSION//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$DEB" ]; then
  (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$KERNEL_PKG=$KERNEL_VERSION" >&2) \
    || die "could not download $KERNEL_PKG=$KERNEL_VERSION with apt-get download"
  DEB=$(ls "$CACHE/debs/${KERNEL_PKG}_"*.deb | head -1)
fi
mkdir -p "$WORK/kernel"
dpkg-deb -x "$DEB" "$WORK/kernel"
VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* | head -1)
KREL=${VMLINUZ##*/vmlinuz-}
MODDIR="$WORK/kernel/lib/modules/$KREL"
[ -d "$MODDIR/kernel" ] || die "$DEB has no lib/modules/$KREL/kernel"

# 2. The initramfs tree.
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,dev,proc,sys,run,tmp,lib/modules}
cp "$BUSYBOX" "$ROOT/bin/busybox"
install -m 0755 "$GUEST_DIR/init" "$ROOT/init"
for prog in wsbench memsum tcpstream freemem memhold; do
  gcc -O2 -static -Wall -Wextra -Werror -o "$ROOT/bin/$prog" "$GUEST_DIR/src/$prog.c"
  strip "$ROOT/bin/$prog"
done

# Modules: each listed one after its dependencies (read from the module's own .modinfo, since
# the package ships no modules.dep), skipping the ones built into the kernel.
declare -A MODULE_FILE=() LOADED=()
while IFS= read -r path; do
  name=${path##*/}; name=${name%%.ko*}; MODULE_FILE[${name//-/_}]=$path
done < <(find "$MODDIR/kernel" -name '*.ko*')
LOAD_LIST="$ROOT/lib/modules/load.list"
: > "$LOAD_LIST"
module_plain() { # path -> the module as plain ELF on stdout
  case "$1" in
    *.ko) cat "$1" ;;
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) die "unexpected module file $1" ;;
  esac
}
add_module() { # name
  local name="${1//-/_}" path dep
  [ -n "${LOADED[$name]:-}" ] && return 0
  LOADED[$name]=1
  if grep -Eq "/${name//_/[-_]}\.ko$" "$MODDIR/modules.builtin"; then return 0; fi
  path=${MODULE_FILE[$name]:-}
  [ -n "$path" ] || die "module $name is neither built into $KREL nor shipped in $DEB"
  module_plain "$path" > "$ROOT/lib/modules/$name.ko"
  for dep in $(readelf -p .modinfo "$ROOT/lib/modules/$name.ko" | sed -n 's/.*depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  echo "$name.ko" >> "$LOAD_LIST"
}
while read -r module; do
  case "$module" in ''|'#'*) continue ;; esac
  add_module "$module"
done < "$GUEST_DIR/modules.list"

# Redis and its libraries, from the packages (downloaded once, verified by apt like the kernel). The libraries a
# binary needs are resolved from the packages' own files alone, so the guest never depends on the host's.
APPX="$WORK/app"
mkdir -p "$APPX" "$ROOT/lib/x86_64-linux-gnu" "$ROOT/lib64"
for spec in $APP_VERSIONS; do
  pkg=${spec%%=*}; ver=${spec#*=}
  deb=$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver" >&2) || die "could not download $pkg=$ver with apt-get download"
    deb=$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_"*.deb | head -1)
  fi
  dpkg-deb -x "$deb" "$APPX"
done
declare -A COPIED_LIB=()
copy_libs() { # elf: copies the libraries it needs, recursively
  local lib found dir
  for lib in $(readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    [ -n "${COPIED_LIB[$lib]:-}" ] && continue
    found=""
    for dir in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
      if [ -e "$APPX/$dir/$lib" ]; then found="$APPX/$dir/$lib"; break; fi
    done
    [ -n "$found" ] || die "library $lib (needed by ${1##*/}) is in none of: $APP_PACKAGES"
    COPIED_LIB[$lib]=1
    cp -L "$found" "$ROOT/lib/x86_64-linux-gnu/$lib"
    copy_libs "$ROOT/lib/x86_64-linux-gnu/$lib"
  done
}
cp "$APPX/usr/bin/redis-check-rdb" "$ROOT/bin/redis-server"
cp "$APPX/usr/bin/redis-cli" "$ROOT/bin/redis-cli"
copy_libs "$ROOT/bin/redis-server"
copy_libs "$ROOT/bin/redis-cli"
cp -L "$APPX/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$ROOT/lib64/ld-linux-x86-64.so.2"
rm -rf "$APPX"

# 3. Reproducible archive: sorted names, fixed times and owners.
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . -mindepth 1 -print0 | sort -z \
  | cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | gzip -9 -n > "$WORK/initrd.img"
cp "$VMLINUZ" "$WORK/vmlinuz"

cat > "$WORK/guest.json" <<JSON
{
  "key": "$KEY",
  "kernelPackage": "$KERNEL_PKG",
  "kernelPackageVersion": "$KERNEL_VERSION",
  "kernelRelease": "$KREL",
  "modules": [$(sed 's/.*/"&"/' "$LOAD_LIST" | paste -sd, -)],
  "appPackages": "$(echo $APP_VERSIONS)",
  "kernelSha256": "$(sha256sum < "$WORK/vmlinuz" | cut -d' ' -f1)",
  "initrdSha256": "$(sha256sum < "$WORK/initrd.img" | cut -d' ' -f1)"
}
JSON
rm -rf "$WORK/kernel" "$WORK/root"
trap - EXIT
if ! mv -T "$WORK" "$OUT" 2>/dev/null; then
  rm -rf "$WORK" # another build published the same key first
fi
echo "$OUT"

#!/usr/bin/env bash
# Prepare the microVM used for tests the host kernel cannot run (IPVS, kprobes):
# download and unpack the Debian kernel package, run depmod on it and build an
# initramfs of busybox + the virtio/9p/overlay modules. Idempotent: everything is
# cached under $NETWHY_VM_CACHE (default <repo>/.vm), keyed by kernel version.
#
#   vm/prepare.sh            prepare (may download the kernel package with apt)
#   vm/prepare.sh --check    only say whether preparing can work here, from local
#                            facts (host tools, cache, apt lists): no download,
#                            no lock, no build. Exit 0 if so.
#
#   NETWHY_VM_CACHE       cache directory (default <repo>/.vm)
#   NETWHY_VM_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
#   NETWHY_VM_OFFLINE=1   never download: use the cached kernel (NETWHY_VM_KERNEL_PKG's
#                         if set, else the newest); exit 3 when there is none
#
# On success the last lines on stdout are KEY=VALUE pairs:
#   KERNEL_VERSION VMLINUZ INITRD MODULES_DIR
# Progress goes to stderr. Exit codes: 2 missing host tool or unwritable cache,
# 3 kernel package not found or not downloadable (or not cached, offline),
# 4 unexpected package content, 1 anything else.
set -euo pipefail

check=
case "${1:-}" in
  '') ;;
  --check) check=1 ;;
  *) printf 'usage: %s [--check]\n' "$0" >&2; exit 1 ;;
esac
offline=
[ "${NETWHY_VM_OFFLINE:-}" != 1 ] || offline=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${NETWHY_VM_CACHE:-$repo/.vm}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

log() { printf 'prepare: %s\n' "$*" >&2; }
die() { local code=$1; shift; printf 'prepare: error: %s\n' "$*" >&2; exit "$code"; }

need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || die 2 "'$1' not found (apt-get install $2)"
}
need dpkg-deb dpkg
need depmod kmod
need cpio cpio
need gzip gzip
need flock util-linux
need sha256sum coreutils
busybox=$(command -v busybox 2>/dev/null || true)
[ -n "$busybox" ] || die 2 "'busybox' not found (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  die 2 "$busybox is dynamically linked; the initramfs needs a static one (apt-get install busybox-static)"
fi

mkdir -p "$cache/kernel" 2>/dev/null && [ -w "$cache/kernel" ] ||
  die 2 "cannot write the microVM cache $cache (set NETWHY_VM_CACHE to a writable directory)"
if [ -z "$check" ]; then
  exec 9>"$cache/.prepare.lock"
  flock 9
fi

# --- which kernel -----------------------------------------------------------
pkg=${NETWHY_VM_KERNEL_PKG:-}
if [ -z "$pkg" ] && [ -z "$offline" ] && command -v apt-cache >/dev/null 2>&1; then
  # apt-cache takes over a second; remember its answer until the apt lists change.
  lists_key=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
  { read -r k p < "$cache/meta-package"; } 2>/dev/null || true
  if [ "${k:-}" = "$lists_key" ] && [ -n "${p:-}" ]; then
    pkg=$p
  else
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ { print $2; exit }') || true
    # not under the lock in --check mode: write it whole
    [ -z "$pkg" ] || { echo "$lists_key $pkg" > "$cache/meta-package.$$" && mv "$cache/meta-package.$$" "$cache/meta-package"; }
  fi
fi
if [ -z "$pkg" ]; then
  # Offline, or apt lists without the meta package: use the newest kernel already cached.
  ver=$(ls -1 "$cache/kernel" 2>/dev/null | while read -r v; do
          [ -f "$cache/kernel/$v/.unpacked" ] && echo "$v"; done | sort -V | tail -n1)
  if [ -z "$ver" ] && [ -n "$offline" ]; then
    die 3 "no kernel in the microVM cache $cache and NETWHY_VM_OFFLINE=1 forbids downloading one"
  fi
  [ -n "$ver" ] || die 3 "cannot resolve the kernel package: 'apt-cache depends linux-image-amd64' gave nothing (run apt-get update, or set NETWHY_VM_KERNEL_PKG=linux-image-<version>-amd64)"
  if [ -n "$offline" ]; then log "NETWHY_VM_OFFLINE=1: using cached kernel $ver"
  else log "linux-image-amd64 not resolvable; using cached kernel $ver"; fi
else
  ver=${pkg#linux-image-}
  ver=${ver%-unsigned}
  ver=${ver%-dbg}
fi
case "$ver" in
  ''|*/*|.*) die 3 "bad kernel version '$ver' from package '$pkg'" ;;
esac
kdir=$cache/kernel/$ver

if [ -n "$check" ]; then
  if [ ! -f "$kdir/.unpacked" ]; then
    [ -z "$offline" ] || die 3 "kernel $ver is not in the microVM cache $cache and NETWHY_VM_OFFLINE=1 forbids downloading it"
    need apt-get apt
  fi
  exit 0
fi

# --- download and unpack ------------------------------------------------------
if [ ! -f "$kdir/.unpacked" ]; then
  [ -z "$offline" ] || die 3 "kernel $ver is not in the microVM cache $cache and NETWHY_VM_OFFLINE=1 forbids downloading it"
  need apt-get apt
  rm -rf "$kdir"
  mkdir -p "$kdir/download"
  log "downloading $pkg"
  if ! (cd "$kdir/download" && apt-get download "$pkg" >&2); then
    rm -rf "$kdir"
    die 3 "apt-get download $pkg failed (run apt-get update; is the package in the configured Debian archive?)"
  fi
  deb=$(ls -1 "$kdir"/download/*.deb | head -n1)
  log "unpacking $(basename "$deb")"
  dpkg-deb -x "$deb" "$kdir/root.tmp"
  dpkg-deb -f "$deb" Package Version > "$kdir/package.txt"
  mv "$kdir/root.tmp" "$kdir/root"
  rm -rf "$kdir/download"
  mdir=
  for d in "$kdir/root/lib/modules/$ver" "$kdir/root/usr/lib/modules/$ver"; do
    [ -d "$d" ] && mdir=$d
  done
  [ -n "$mdir" ] || die 4 "$pkg has no lib/modules/$ver"
  [ -f "$kdir/root/boot/vmlinuz-$ver" ] || die 4 "$pkg has no boot/vmlinuz-$ver"
  log "depmod $ver"
  depmod -b "$(dirname "$(dirname "$(dirname "$mdir")")")" "$ver"
  ln -sfn "${mdir#"$kdir"/}" "$kdir/modules"
  ln -sfn "root/boot/vmlinuz-$ver" "$kdir/vmlinuz"
  touch "$kdir/.unpacked"
fi
mdir=$(cd "$kdir/modules" && pwd -P)

# --- initramfs ----------------------------------------------------------------
# The modules needed to mount the 9p shares and the overlay; their dependencies
# (virtio_ring, virtio, virtio_pci_*_dev, 9pnet, netfs, fscache, ...) come from
# modules.dep, in load order.
targets=(virtio_pci 9pnet_virtio 9p overlay)
declare -A DEP=() FILE=() SEEN=() BUILTIN=()
order=()
while IFS= read -r line; do
  p=${line%%:*}
  n=${p##*/}; n=${n%%.ko*}; n=${n//-/_}
  FILE[$n]=$p
  DEP[$n]=${line#*:}
done < "$mdir/modules.dep"
if [ -f "$mdir/modules.builtin" ]; then
  while IFS= read -r p; do n=${p##*/}; n=${n%%.ko*}; BUILTIN[${n//-/_}]=1; done < "$mdir/modules.builtin"
fi
visit() {
  local n=$1 d dn
  [ -z "${SEEN[$n]:-}" ] || return 0
  SEEN[$n]=1
  if [ -z "${FILE[$n]:-}" ]; then
    [ -n "${BUILTIN[$n]:-}" ] && return 0
    die 4 "module $n is neither in modules.dep nor built into $ver"
  fi
  for d in ${DEP[$n]}; do dn=${d##*/}; dn=${dn%%.ko*}; visit "${dn//-/_}"; done
  order+=("$n")
}
for t in "${targets[@]}"; do visit "$t"; done

# --- an uncompressed vmlinux --------------------------------------------------
# Debian's bzImage is xz-compressed; decompressing it under TCG costs seconds at
# every boot. qemu boots the ELF vmlinux inside directly when it has a PVH entry
# (CONFIG_PVH, Xen note 18). Best effort: without it the runner uses vmlinuz.
vmlinux=$kdir/vmlinux
if [ ! -e "$vmlinux" ] && [ ! -e "$kdir/.no-vmlinux" ]; then
  off=
  if command -v xz >/dev/null 2>&1; then
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kdir/vmlinuz" 2>/dev/null | head -n1 | cut -d: -f1) || true
  fi
  if [ -n "$off" ] &&
     xz -dc --single-stream < <(tail -c "+$((off + 1))" "$kdir/vmlinuz") > "$vmlinux.tmp" 2>/dev/null &&
     [ "$(head -c 4 "$vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] &&
     { ! command -v readelf >/dev/null 2>&1 || readelf -n "$vmlinux.tmp" | grep -q '(0x00000012)'; }; then
    mv "$vmlinux.tmp" "$vmlinux"
    log "extracted vmlinux (PVH) from vmlinuz"
  else
    rm -f "$vmlinux.tmp"
    touch "$kdir/.no-vmlinux"
    log "no PVH vmlinux could be extracted; booting vmlinuz"
  fi
fi

init_src=$here/initramfs-init.sh
stamp=$( { echo "$ver"; printf '%s\n' "${order[@]}"; for n in "${order[@]}"; do echo "${FILE[$n]}"; done
           sha256sum "$init_src" "$busybox" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
initrd=$kdir/initrd.img
if [ ! -f "$initrd" ] || [ "$(cat "$kdir/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building initramfs (${order[*]})"
  b=$kdir/initrd.build
  rm -rf "$b"
  mkdir -p "$b"/{bin,sbin,dev,proc,sys,run,mnt/host,mnt/rw,mnt/root,modules}
  cp "$busybox" "$b/bin/busybox"
  ln -s busybox "$b/bin/sh"
  mknod -m 600 "$b/dev/console" c 5 1 2>/dev/null || true
  mknod -m 666 "$b/dev/null" c 1 3 2>/dev/null || true
  : > "$b/modules/order"
  i=0
  for n in "${order[@]}"; do
    i=$((i + 1))
    src=$mdir/${FILE[$n]}
    dst=$b/modules/$(printf '%02d' "$i")-$n.ko
    case "$src" in
      *.ko) cp "$src" "$dst" ;;
      *.ko.xz) need xz xz-utils; xz -dc "$src" > "$dst" ;;
      *.ko.zst) need zstd zstd; zstd -qdc "$src" > "$dst" ;;
      *.ko.gz) gzip -dc "$src" > "$dst" ;;
      *) die 4 "unknown module file type: $src" ;;
    esac
    echo "${dst#"$b"}" >> "$b/modules/order"
  done
  install -m 755 "$init_src" "$b/init"
  (cd "$b" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  echo "$stamp" > "$kdir/initrd.stamp"
  rm -rf "$b"
fi

echo "KERNEL_VERSION=$ver"
echo "VMLINUZ=$(cd "$kdir" && pwd -P)/root/boot/vmlinuz-$ver"
[ -e "$vmlinux" ] && echo "VMLINUX=$vmlinux"
echo "INITRD=$initrd"
echo "MODULES_DIR=$mdir"

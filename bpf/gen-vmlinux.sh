#!/usr/bin/env bash
# Regenerates bpf/ARCH/vmlinux.h, the kernel types the BPF programs compile
# against (CO-RE relocates them to the running kernel at load time).
#
#   bpf/gen-vmlinux.sh ARCH [debian|host]      ARCH: x86 | arm64
#
# debian (default): downloads the Debian kernel package of ARCH from this
#   machine's apt sources and takes the BTF out of its kernel image:
#   1. `apt-get update` / `apt-get download` with a private apt state in a temp
#      directory (APT::Architectures=amd64|arm64, Dir::State::Lists, Dir::Cache),
#      so no `dpkg --add-architecture` and nothing in /var/lib/apt changes.
#      The package is what linux-image-<debarch> depends on (on bookworm e.g.
#      linux-image-6.1.0-57-arm64); KERNEL_PKG=<name> picks another.
#   2. `dpkg-deb --fsys-tarfile | tar` unpacks only ./boot/vmlinuz-*.
#   3. The image is made plain: arm64 `Image` as is, gzip'ed Image, EFI zboot
#      (MZ + "zimg": payload offset/size and compression named in the header)
#      or x86 bzImage (setup header "HdrS": payload_offset/payload_length),
#      decompressed with gzip/xz/zstd/lz4/bzip2/lzma as the magic says.
#   4. The BTF blob is found by its header (magic 0xeb9f, version 1, flags 0,
#      hdr_len 24, type_off 0, str_off == type_len); its length is
#      hdr_len + str_off + str_len. The kernel keeps .BTF in an allocated
#      section, so it survives the objcopy that makes the image.
#   5. `bpftool btf dump file BLOB format c`, checked to be ARCH's (arm64:
#      struct user_pt_regs; x86: struct pt_regs with r15), written with a
#      first line naming the package and version.
# host: dumps /sys/kernel/btf/vmlinux of the running kernel (ARCH must be the
#   host's). bpf/x86/vmlinux.h was made this way, from a 6.18 kernel (it has
#   no first line naming it; bpf/arm64/vmlinux.h came from `debian`).
#
# Needs apt-get, dpkg-deb, tar, GNU grep (-P), od, bpftool and the image's
# decompressor; no root.
set -euo pipefail

usage() { echo "usage: $0 x86|arm64 [debian|host]" >&2; exit 2; }
die() { echo "gen-vmlinux: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
ARCH=$1
SOURCE=${2:-debian}
case $ARCH in
  x86) DEBARCH=amd64 UNAME=x86_64 ;;
  arm64) DEBARCH=arm64 UNAME=aarch64 ;;
  *) usage ;;
esac
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
OUT_DIR=$(cd "$(dirname "$0")" && pwd)/$ARCH

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

u32() { # u32 FILE OFFSET: little-endian u32 at OFFSET
  od -An -v -tu4 -j "$2" -N 4 "$1" | tr -d ' \n'
}

cut_bytes() { # cut_bytes IN OFFSET LENGTH OUT
  dd if="$1" of="$4" skip="$2" count="$3" iflag=skip_bytes,count_bytes bs=1M status=none
}

decompress() { # decompress IN OUT: by the magic at the start of IN
  # The kernel build appends the uncompressed size after most streams; xz
  # skips it with --single-stream, the others may complain about it after
  # writing everything. What comes out is checked by extract_btf and bpftool.
  local magic
  magic=$(od -An -v -tx1 -N 6 "$1" | tr -d ' \n')
  case $magic in
    fd377a585a00) xz -dc --single-stream <"$1" >"$2" ;;
    5d0000*) xz -F lzma -dc --single-stream <"$1" >"$2" ;;
    1f8b*) gzip -dc <"$1" >"$2" 2>/dev/null || true ;;
    28b52ffd*) zstd -qdc <"$1" >"$2" 2>/dev/null || true ;;
    02214c18*) lz4 -dc <"$1" >"$2" 2>/dev/null || true ;;
    425a68*) bzip2 -dc <"$1" >"$2" 2>/dev/null || true ;;
    *) die "unknown compression (magic $magic)" ;;
  esac
  [ -s "$2" ] || die "decompressing the kernel image gave nothing"
}

plain_image() { # plain_image VMLINUZ OUT: the uncompressed kernel image
  local img=$1 out=$2 off size
  if [ "$(od -An -c -j 56 -N 4 "$img" | tr -d ' ')" = ARMd ]; then
    cp "$img" "$out"                                   # arm64 Image
  elif [ "$(od -An -c -j 4 -N 4 "$img" | tr -d ' ')" = zimg ]; then
    off=$(u32 "$img" 8) size=$(u32 "$img" 12)          # EFI zboot
    cut_bytes "$img" "$off" "$size" "$TMP/payload"
    decompress "$TMP/payload" "$out"
  elif [ "$(od -An -c -j 514 -N 4 "$img" | tr -d ' ')" = HdrS ]; then
    local sects                                        # x86 bzImage
    sects=$(od -An -tu1 -j 497 -N 1 "$img" | tr -d ' ')
    [ "$sects" = 0 ] && sects=4
    off=$(( (sects + 1) * 512 + $(u32 "$img" 584) )) size=$(u32 "$img" 588)
    cut_bytes "$img" "$off" "$size" "$TMP/payload"
    decompress "$TMP/payload" "$out"
  else
    decompress "$img" "$TMP/inner"                     # e.g. gzip'ed Image
    plain_image "$TMP/inner" "$out"
  fi
}

extract_btf() { # extract_btf IMAGE OUT: the largest well-formed BTF blob
  local best=0 at hl to tl so sl
  while read -r at; do
    read -r hl to tl so sl <<<"$(od -An -v -tu4 -j $((at + 4)) -N 20 "$1" | tr -s ' \n' '  ')"
    [ "$hl" = 24 ] && [ "$to" = 0 ] && [ "$so" = "$tl" ] || continue
    if [ $((hl + so + sl)) -gt "$best" ]; then
      best=$((hl + so + sl))
      cut_bytes "$1" "$at" "$best" "$2"
    fi
  done < <(LC_ALL=C grep -obUaP '\x9f\xeb\x01\x00\x18\x00\x00\x00' "$1" | cut -d: -f1)
  [ "$best" -gt 0 ] || die "no BTF in the kernel image (CONFIG_DEBUG_INFO_BTF?)"
}

check_arch() { # check_arch HEADER: fails unless HEADER's pt_regs are ARCH's
  case $ARCH in
    arm64) grep -q '^struct user_pt_regs {' "$1" ;;
    x86) awk '/^struct pt_regs {/,/^};/' "$1" | grep -q 'long unsigned int r15;' ;;
  esac || die "the BTF is not $ARCH's"
}

if [ "$SOURCE" = host ]; then
  [ "$(uname -m)" = "$UNAME" ] || die "host is $(uname -m), not $UNAME"
  BTF=/sys/kernel/btf/vmlinux
  ORIGIN="/sys/kernel/btf/vmlinux of $(uname -r)"
elif [ "$SOURCE" = debian ]; then
  mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial"
  touch "$TMP/status"
  APT=(-q -o "APT::Architecture=$DEBARCH" -o "APT::Architectures::=$DEBARCH"
       -o "Dir::State::Lists=$TMP/lists" -o "Dir::State::status=$TMP/status"
       -o "Dir::Cache=$TMP/cache" -o "Debug::NoLocking=1"
       -o "APT::Sandbox::User=$(id -un)")
  apt-get "${APT[@]}" update >/dev/null
  if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache "${APT[@]}" depends "linux-image-$DEBARCH" |
      awk '/Depends: linux-image-/ { print $2; exit }')
    [ -n "$KERNEL_PKG" ] || die "linux-image-$DEBARCH names no kernel package"
  fi
  (cd "$TMP" && apt-get "${APT[@]}" download "$KERNEL_PKG:$DEBARCH" >/dev/null 2>&1) ||
    die "apt-get download $KERNEL_PKG:$DEBARCH failed"
  DEB=$(ls "$TMP"/*.deb)
  VERSION=$(dpkg-deb -f "$DEB" Version)
  mkdir "$TMP/root"
  dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$TMP/root" --wildcards './boot/vmlinuz-*'
  plain_image "$TMP"/root/boot/vmlinuz-* "$TMP/image"
  extract_btf "$TMP/image" "$TMP/btf"
  BTF=$TMP/btf
  ORIGIN="$KERNEL_PKG $VERSION ($DEBARCH) from Debian"
else
  usage
fi

{
  echo "/* Generated by bpf/gen-vmlinux.sh $ARCH $SOURCE: BTF of $ORIGIN. */"
  "$BPFTOOL" btf dump file "$BTF" format c
} >"$TMP/vmlinux.h"
check_arch "$TMP/vmlinux.h"
mkdir -p "$OUT_DIR"
mv "$TMP/vmlinux.h" "$OUT_DIR/vmlinux.h"
echo "wrote $OUT_DIR/vmlinux.h ($(wc -l <"$OUT_DIR/vmlinux.h") lines) from $ORIGIN"

#!/bin/sh
# /init of the netwhy microVM initramfs (busybox). Mounts the host's root
# read-only over 9p under an overlay with a tmpfs upper layer, the unpacked
# kernel modules at /lib/modules/$(uname -r) and the per-run share (read-write)
# at /run/netwhy, then switch_roots into the host root and runs
# /run/netwhy/guest-init.sh there (copied into the run directory by the runner).
#
# Then, after the guest's own /tmp, /run, ... are mounted, the shares listed in
# /run/netwhy/shares ("<tag> <rw|ro> <path>" lines, outer first), each at its
# host path: rw read-write, ro read-only under an overlay with a tmpfs upper.
# The runner shares the command's working directory that way, and the
# repository when the guest would not see it otherwise (a checkout under /tmp).
#
# 9p shares (mount tags) given by the runner: hostroot, netwhymods, netwhyrun,
# and those in the list (netwhycwd, netwhyrepo).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
	echo "netwhy-init: FATAL: $*"
	echo o > /proc/sysrq-trigger
	sleep 10
	exit 1
}

echo "netwhy-init: loading modules"
while read -r m; do
	insmod "$m" || fail "insmod $m failed"
done < /modules/order

p9='trans=virtio,version=9p2000.L,msize=524288'
echo "netwhy-init: mounting host root"
mount -t 9p -o "$p9,ro,cache=loose" hostroot /mnt/host || fail "mount of 9p share 'hostroot' failed"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "tmpfs for the overlay failed"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /mnt/root ||
	fail "overlay over the host root failed"

# /lib is usually a relative symlink (usr/lib) on merged-/usr hosts: resolve it
# inside the new root, not in the initramfs.
lib=/mnt/root/lib
if [ -L "$lib" ]; then
	t=$(readlink "$lib")
	case "$t" in
		/*) lib=/mnt/root$t ;;
		*) lib=/mnt/root/$t ;;
	esac
fi
kver=$(uname -r)
mkdir -p "$lib/modules/$kver"
mount -t 9p -o "$p9,ro,cache=loose" netwhymods "$lib/modules/$kver" || fail "mount of 9p share 'netwhymods' failed"

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /mnt/root/run || fail "tmpfs on /run failed"
mkdir -p /mnt/root/run/netwhy
mount -t 9p -o "$p9,rw" netwhyrun /mnt/root/run/netwhy || fail "mount of 9p share 'netwhyrun' failed"
[ -f /mnt/root/run/netwhy/guest-init.sh ] || fail "no guest-init.sh in the run share"

mount --move /proc /mnt/root/proc
mount --move /sys /mnt/root/sys
mount --move /dev /mnt/root/dev

# The rest of the guest's setup is done here, with the static busybox in RAM:
# every program run after switch_root is read from the host over 9p (slow
# under TCG). vm/guest-init.sh checks and completes it.
sub() { # sub <type> <dir under the new root> [options]
	mkdir -p "/mnt/root$2" 2>/dev/null
	mount -t "$1" ${3:+-o "$3"} "$1" "/mnt/root$2" || echo "netwhy-init: warning: cannot mount $1 on $2"
}
sub devpts /dev/pts gid=5,mode=620,ptmxmode=666
sub tmpfs /dev/shm mode=1777,nosuid,nodev
sub tmpfs /tmp mode=1777,nosuid,nodev
sub bpf /sys/fs/bpf mode=700
sub tracefs /sys/kernel/tracing
sub debugfs /sys/kernel/debug
sub cgroup2 /sys/fs/cgroup

# The extra shares, on top of everything above (a checkout under /tmp goes on
# the guest's /tmp). The runner resolved symlinks in the paths on the host.
if [ -s /mnt/root/run/netwhy/shares ]; then
	while IFS= read -r line; do
		tag=${line%% *}; rest=${line#* }
		mode=${rest%% *}; path=${rest#* }
		case "$path" in /*) ;; *) fail "bad line in the shares list: $line" ;; esac
		mkdir -p "/mnt/root$path" || fail "cannot create $path for the 9p share '$tag'"
		case "$mode" in
			rw) mount -t 9p -o "$p9,rw,cache=loose" "$tag" "/mnt/root$path" ||
				fail "mount of 9p share '$tag' at $path failed" ;;
			ro) mkdir -p "/mnt/share/$tag" "/mnt/rw/$tag/upper" "/mnt/rw/$tag/work"
				mount -t 9p -o "$p9,ro,cache=loose" "$tag" "/mnt/share/$tag" ||
					fail "mount of 9p share '$tag' failed"
				mount -t overlay overlay -o "lowerdir=/mnt/share/$tag,upperdir=/mnt/rw/$tag/upper,workdir=/mnt/rw/$tag/work" "/mnt/root$path" ||
					fail "overlay of 9p share '$tag' at $path failed" ;;
			*) fail "bad line in the shares list: $line" ;;
		esac
	done < /mnt/root/run/netwhy/shares
fi

hostname netwhy-vm
ip link set lo up || echo "netwhy-init: warning: cannot bring up lo"
echo "netwhy-init: switch_root"
exec switch_root /mnt/root /bin/sh /run/netwhy/guest-init.sh

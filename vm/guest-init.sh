#!/bin/sh
# PID 1 of the netwhy microVM after switch_root into the host's (read-only,
# overlaid) root. The runner copies this file into the run directory, which the
# initramfs mounted read-write at /run/netwhy. It expects there:
#   cmd.sh    the command (cd, exports, exec), written by the runner
#   modules   optional, module names to modprobe first, one per line
#   trace     optional, if present: print timestamps of the steps on the console
# and leaves there: kernel (uname -r), stdout, stderr, exit_code (written last),
# or modprobe.err + exit_code 125 when a module could not be loaded.
# Every program started here is read over 9p, so this file avoids needless execs.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
R=/run/netwhy
trace=
[ -e "$R/trace" ] && trace=1
step() {
	[ -n "$trace" ] || return 0
	read -r up _ < /proc/uptime
	echo "netwhy-guest: [$up] $*"
}

step start
# The initramfs mounted these already (with busybox, faster); complete what is missing.
mounts=
while read -r _ dir _; do mounts="$mounts $dir "; done < /proc/mounts
mnt() { # mnt <type> <dir> [options]
	case "$mounts" in *" $2 "*) return 0 ;; esac
	[ -d "$2" ] || mkdir -p "$2" 2>/dev/null
	mount -t "$1" ${3:+-o "$3"} "$1" "$2" 2>/dev/null || echo "netwhy-guest: warning: cannot mount $1 on $2"
}
mnt proc /proc
mnt sysfs /sys
mnt devtmpfs /dev
mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs /dev/shm mode=1777,nosuid,nodev
mnt tmpfs /tmp mode=1777,nosuid,nodev
mnt bpf /sys/fs/bpf mode=700
mnt tracefs /sys/kernel/tracing
mnt debugfs /sys/kernel/debug
mnt cgroup2 /sys/fs/cgroup
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
flags=0
read -r flags < /sys/class/net/lo/flags
case "$flags" in
	*[13579bdfBDF]) ;; # IFF_UP
	*) ip link set lo up 2>/dev/null || echo "netwhy-guest: warning: cannot bring up lo" ;;
esac
step set up

read -r kver < /proc/sys/kernel/osrelease
echo "$kver" > "$R/kernel"

rc=
if [ -s "$R/modules" ]; then
	# shellcheck disable=SC2046
	if ! modprobe -a $(cat "$R/modules") 2> "$R/modprobe.err"; then
		rc=125
	fi
	step modprobe done
fi

if [ -z "$rc" ]; then
	read -r up _ < /proc/uptime
	echo "$up" > "$R/ready_uptime"
	echo "NETWHY_READY"
	sh "$R/cmd.sh" < /dev/null > "$R/stdout" 2> "$R/stderr"
	rc=$?
	step command exited "$rc"
fi
echo "$rc" > "$R/exit_code.tmp"
mv "$R/exit_code.tmp" "$R/exit_code"
sync
echo "NETWHY_DONE $rc"
echo o > /proc/sysrq-trigger
sleep 60

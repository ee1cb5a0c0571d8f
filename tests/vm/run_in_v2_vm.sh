#!/bin/bash
# Run a shell command as root inside a throw-away QEMU VM whose kernel is cgroup-v2-only.
#
#   tests/vm/run_in_v2_vm.sh [-o OUTDIR] 'command'
#
# Streams the guest's stdout+stderr, exits with the command's exit code in the guest
# (125: the VM itself failed; its console log is printed). Files the guest writes
# under $CK_V2VM_RESULTS (/xfer/results) are copied to OUTDIR after the VM exits,
# also when it was stopped by the timeout: whatever was finished survives.
#
# The guest: Debian's kernel booted with systemd.unified_cgroup_hierarchy=1
# cgroup_no_v1=all: cgroup2 only, at /sys/fs/cgroup with systemd's options (nsdelegate,
# memory_recursiveprot), every process in the root cgroup. The host's / is shared
# read-only over virtio-9p under a tmpfs overlay, so the project's own checkout and
# .venv run in place and guest writes never reach the host. A fresh 64 MiB disk
# (virtio-blk, one ext4 partition) is at /var/tmp, so io.max throttles a real block
# device. The command runs with the caller's PATH and working directory, and with
# CK_IN_V2_VM=1 (tests that would boot a VM skip on it).
#
# Needs (Debian 12): apt-get install -y qemu-system-x86 linux-image-amd64 busybox-static
# (mkfs.ext4 is e2fsprogs, always installed). Adapted from the shared recipe
# run-in-v2-vm.sh. Knobs: CK_V2VM_KVER, CK_V2VM_MEM (2G), CK_V2VM_CPUS (2),
# CK_V2VM_ACCEL (kvm|tcg; default kvm if usable), CK_V2VM_TIMEOUT (900 s),
# CK_V2VM_DISK_MIB (64; 0 for no disk), CK_V2VM_CACHE.
set -euo pipefail
OUT=
while getopts o: opt; do
  case $opt in o) OUT=$OPTARG ;; *) echo "usage: $0 [-o OUTDIR] 'command'" >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
CMD=${1:?usage: $0 [-o OUTDIR] 'command'}

KVER=${CK_V2VM_KVER:-$(ls /lib/modules 2>/dev/null | sort -V | grep -- '-amd64$' | tail -1 || true)}
KERNEL=/boot/vmlinuz-$KVER
BUSYBOX=/bin/busybox
CACHE=${CK_V2VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/container-kernel-v2vm}
MEM=${CK_V2VM_MEM:-2G}; CPUS=${CK_V2VM_CPUS:-2}; DISK_MIB=${CK_V2VM_DISK_MIB:-64}
APT="apt-get install -y qemu-system-x86 linux-image-amd64 busybox-static"
need() { echo "run_in_v2_vm: $1 is missing: $APT" >&2; exit 125; }
command -v qemu-system-x86_64 >/dev/null || need qemu-system-x86_64
[ -n "$KVER" ] && [ -r "$KERNEL" ] || need "a Debian amd64 kernel (/boot/vmlinuz-*-amd64)"
# The initrd runs busybox before any library is reachable: it must be the static one.
case $(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true) in *"not a dynamic"*) ;; *) need "a static $BUSYBOX" ;; esac

# /dev/kvm alone is not enough: a nested host without VT-x/AMD-V (e.g. kvm-pvm, which
# needs a PVM guest kernel) opens it, creates VMs, and then never runs a stock kernel.
if [ -z "${CK_V2VM_ACCEL:-}" ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
    CK_V2VM_ACCEL=kvm
  else
    CK_V2VM_ACCEL=tcg
  fi
fi
case $CK_V2VM_ACCEL in
  kvm) ACCEL=(-accel kvm -cpu host) ;;
  tcg) ACCEL=(-accel tcg,thread=multi -cpu max) ;;   # software emulation, ~8 s a boot
  *) echo "run_in_v2_vm: CK_V2VM_ACCEL must be kvm or tcg" >&2; exit 2 ;;
esac

# The initrd is built once per kernel and per version of this script (its hash is in
# the name), so an edit below is never hidden by a stale cache.
REV=$(sha256sum "$0" | cut -c1-12)
INITRD=$CACHE/initrd-$KVER-$REV.cpio.gz
mkdir -p "$CACHE"
if [ ! -s "$INITRD" ]; then
  T=$(mktemp -d "$CACHE/initrd.XXXXXX")
  trap 'rm -rf "$T"' EXIT
  mkdir -p "$T"/{bin,mods,lower,rw,root}
  cp "$BUSYBOX" "$T/bin/busybox"
  # No modprobe in the initrd: the modules are insmod'ed in dependency order.
  for m in virtio_pci 9pnet_virtio 9p overlay virtio_console virtio_blk ext4; do
    modprobe -S "$KVER" --show-depends $m | awk '$1=="insmod"{print $2}'; done | awk '!s[$0]++' |
    while read -r ko; do cp "$ko" "$T/mods/"; basename "$ko" >> "$T/mods/order"; done
  cat > "$T/init" <<'INIT'
#!/bin/busybox sh
B=/bin/busybox
for m in $($B cat /mods/order); do $B insmod /mods/$m 2>/dev/null; done  # crc32c-intel may refuse: generic is there
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower
$B mount -t tmpfs -o size=50% tmpfs /rw; $B mkdir -p /rw/u /rw/w
$B mount -t overlay -o lowerdir=/lower,upperdir=/rw/u,workdir=/rw/w overlay /root
R=/root; $B mount -t proc proc $R/proc; $B mount -t sysfs sys $R/sys; $B mount -t devtmpfs dev $R/dev
$B mkdir -p $R/dev/pts $R/dev/shm $R/xfer $R/.vm; $B mount -t devpts devpts $R/dev/pts; $B mount -t tmpfs tmpfs $R/dev/shm
# cgroup2 with systemd's mount options, as on most v2 hosts (older kernels: plain).
$B mount -t tmpfs tmpfs $R/run
$B mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $R/sys/fs/cgroup 2>/dev/null ||
  $B mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 xfer $R/xfer
for d in $R/sys/class/virtio-ports/vport*; do [ "$($B cat $d/name)" = out ] && OUT=/dev/${d##*/}; done
# The scratch disk, when given: a real block device under /var/tmp for io.max to throttle.
if [ -e $R/sys/block/vda ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -e $R/sys/block/vda/vda1 ] && break; $B sleep 0.2; done
  $B mount -t ext4 -o noatime $R/dev/vda1 $R/var/tmp && $B chmod 1777 $R/var/tmp
fi
$B cp $B $R/.vm/busybox
# stage 2 runs as PID 1 of the real root (switch_root, not chroot: user namespaces refuse chrooted callers)
$B cat > $R/.vm/stage2 <<S2
#!/.vm/busybox sh
cd /; /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
  /bin/bash /xfer/cmd </dev/null >$OUT 2>&1
echo \$? > /xfer/rc; /.vm/busybox sync; /.vm/busybox poweroff -f
S2
$B chmod +x $R/.vm/stage2
exec $B switch_root $R /.vm/stage2
INIT
  chmod +x "$T/init"
  (cd "$T" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  find "$CACHE" -maxdepth 1 -name "initrd-$KVER-*.cpio.gz" ! -name "${INITRD##*/}" -delete
  rm -rf "$T"; trap - EXIT
fi

# One temp dir per run: the xfer share (command, exit code, results) and the disk image.
T=$(mktemp -d "$CACHE/run.XXXXXX")
QPID= TPID=
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
X=$T/xfer; mkdir -p "$X/results"
{
  printf 'export PATH=%q CK_IN_V2_VM=1 CK_V2VM_RESULTS=/xfer/results\n' "$PATH"
  printf 'cd %q 2>/dev/null || true\n' "$PWD"
  printf '%s\n' "$CMD"
} > "$X/cmd"
DISK=()
if [ "$DISK_MIB" -gt 0 ]; then
  # One partition, from 1 MiB to the end, as /var/tmp is on most hosts: io.max takes whole
  # disks only (a partition's MAJ:MIN is ENODEV), so the runtime's mapping is exercised too.
  # The MBR by hand: one entry (type 83, LBA start, LBA count) and the 55 AA signature.
  truncate -s "${DISK_MIB}M" "$T/disk.img"
  le32() { printf '\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
  printf "\x00\xfe\xff\xff\x83\xfe\xff\xff$(le32 2048)$(le32 $((DISK_MIB * 2048 - 2048)))" |
    dd of="$T/disk.img" bs=1 seek=446 conv=notrunc status=none
  printf '\x55\xaa' | dd of="$T/disk.img" bs=1 seek=510 conv=notrunc status=none
  mkfs.ext4 -q -F -L ck-v2vm -E offset=1048576 "$T/disk.img" "$((DISK_MIB - 1))M"
  DISK=(-drive "file=$T/disk.img,format=raw,if=none,id=disk,cache=unsafe" -device virtio-blk-pci,drive=disk)
fi
: > "$T/out"
# --foreground keeps qemu in our process group: a caller that signals the group stops it.
timeout --foreground -k 10 "${CK_V2VM_TIMEOUT:-900}" qemu-system-x86_64 "${ACCEL[@]}" -m "$MEM" -smp "$CPUS" \
  -machine q35 -nodefaults -no-user-config -nic none -vga none -display none -no-reboot \
  -serial file:"$T/console.log" \
  -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
  -fsdev local,id=x,path="$X",security_model=none -device virtio-9p-pci,fsdev=x,mount_tag=xfer \
  -device virtio-serial-pci -chardev file,id=out,path="$T/out" -device virtserialport,chardev=out,name=out \
  "${DISK[@]}" \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" &
QPID=$!
tail -n +1 -s 0.5 -f --pid="$QPID" "$T/out" &   # the guest's output, as it comes
TPID=$!
wait "$QPID" && QRC=0 || QRC=$?   # (a trapped signal interrupts this wait, not a foreground job)
QPID=
wait "$TPID" || true
TPID=
[ -n "$OUT" ] && mkdir -p "$OUT" && cp -r "$X/results/." "$OUT/"
if [ -s "$X/rc" ]; then
  RC=$(cat "$X/rc")
else
  [ "$QRC" = 124 ] && echo "run_in_v2_vm: the VM was stopped after ${CK_V2VM_TIMEOUT:-900} s" >&2
  echo "run_in_v2_vm: the VM failed (accel $CK_V2VM_ACCEL); its console log:" >&2
  cat "$T/console.log" >&2
  RC=125
fi
echo "[vm exit code: $RC, accel $CK_V2VM_ACCEL]" >&2
exit "$RC"

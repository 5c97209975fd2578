#!/usr/bin/env bash
# make demo: boot Debian's stock kernel with a busybox initramfs under vmm
# until a shell prints the marker "VMM-DEMO: shell ready". On a terminal
# the shell stays interactive; otherwise the guest reboots and this exits 0.
# Where the host's KVM is not hardware-assisted, the same boot runs inside
# the lab (QEMU TCG with SVM + nested paging), and it says so.
set -euo pipefail
LAB_PROG=demo
# shellcheck source=scripts/lab/lib.sh
. "$(dirname "$0")/lab/lib.sh"
cd "$LAB_ROOT"

mode='batch'
[ -t 0 ] && [ -t 1 ] && mode=interactive
cmdline="console=ttyS0 reboot=k panic=-1 acpi=off quiet vmmdemo=$mode"

"$LAB_SCRIPTS/prepare" >/dev/null
root=$(mktemp -d "$LAB/demo-root.XXXXXX")
lab_add_busybox "$root"
mkdir -p "$root/proc" "$root/sys" "$root/dev"
cp scripts/demo-init "$root/init"
lab_cpio "$root" "$LAB/demo-guest.cpio"
rm -rf "$root"

hw_kvm() {
	grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]
}

log=$LAB/demo.log
if hw_kvm; then
	echo "demo: booting $(cat "$LAB/kernel-version") on this host's KVM"
	rc=0
	build/vmm run --kernel "$LAB/bzImage" --initrd "$LAB/demo-guest.cpio" \
		--mem 512M --cpus 2 --cmdline "$cmdline" | tee "$log" || rc=$?
else
	echo "demo: this host's KVM is not hardware-assisted (no vmx/svm): stock kernels"
	echo "demo: cannot boot on it, so vmm runs inside the lab (QEMU TCG, -cpu EPYC,+svm,+npt)"
	[ "$mode" = interactive ] && echo "demo: (non-interactive inside the lab: the guest reboots after the marker)"
	lab_require_host_tools
	lab_lock
	work=$(mktemp -d "$LAB/demo-l1.XXXXXX")
	lab_make_l1_root "$work" "$LAB/demo-guest.cpio"
	lab_add_elf "$work" build/vmm /lab/vmm
	cat >"$work/init" <<INIT
#!/bin/sh
. /lab/l1-lib.sh
if lab_l1_setup >/dev/null; then
    echo "demo: lab ready, running: vmm run --kernel bzImage --initrd demo.cpio --mem 512M --cpus 2"
    /lab/vmm run --kernel /lab/bzImage --initrd /lab/guest.cpio --mem 512M --cpus 2 \
        --cmdline "${cmdline/interactive/batch}" </dev/null
    echo "VMMDEMO rc=\$?"
fi
lab_l1_finish >/dev/null
INIT
	chmod 755 "$work/init"
	lab_cpio "$work" "$LAB/demo-l1.cpio"
	rm -rf "$work"
	rc=0
	lab_boot_l1 "$LAB/demo-l1.cpio" "$log.raw" || rc=$?
	tr -d '\r' <"$log.raw" | sed -n '/^demo: lab ready/,$p' | grep -v '^VMMLAB' | tee "$log"
	vmm_rc=$(sed -n 's/^VMMDEMO rc=//p' "$log")
	[ "$rc" = 0 ] && rc=${vmm_rc:-1}
fi

if [ "$rc" = 0 ] && grep -q 'VMM-DEMO: shell ready' "$log"; then
	echo "demo: OK: the guest's shell printed the marker and vmm exited 0"
	exit 0
fi
echo "demo: FAILED (exit status $rc; full console in ${log#"$LAB_ROOT"/})" >&2
exit 1

# shellcheck shell=sh
# tests/lab/scenarios.sh - the lab scenarios, both halves in one place.
#
# scripts/lab/run-tests sources this file twice:
#  - inside L1 (busybox ash), where it calls lab_scenarios: run things;
#  - on the host (bash), where it calls lab_expectations: check the log.
# Keep it POSIX sh.  To add a scenario, add a lab_run line below and a
# matching check line in lab_expectations, using the same NAME.
#
# Inside L1 (see scripts/lab/l1-lib.sh for lab_run, lab_skip, lab_note):
#   $VMM      the VMM under test       $KERNEL   stock bzImage
#   $VMLINUX  ELF vmlinux of it        $INITRD   guest initramfs (uncompressed)
#   $GUEST_CMDLINE  console + reset settings every booting scenario needs
# The guest prints one line, then resets:
#   VMMGUEST nproc=N memtotal_kb=N cmdline=... initrd=<marker>
#
# On the host (see scripts/lab/run-tests for the check_* helpers):
#   check_boot NAME [nproc=N] [mem=SIZE] [cmdline=SUBSTRING]
#       rc 0, exactly one VMMGUEST line, and the given facts; mem=SIZE means
#       MemTotal within (SIZE - MEM_SLACK, SIZE]; the initrd marker must match.
#   check_usage_error NAME [WORD]
#       rc 2, exactly one stderr line starting with "vmm: ", no guest boot;
#       WORD, if given, must appear in that line (case-insensitive), so the
#       error is about what the scenario got wrong and not something else.
#   check_note NAME KEY OP VALUE   a "VMMLAB NAME KEY=N" fact, OP: -eq -ge ...
# A scenario that printed "VMMLAB NAME skip: WHY" makes its checks SKIP.

lab_scenarios() {
    GUEST_CMDLINE="console=ttyS0 reboot=k panic=-1"
    BOOT_SECS=120   # per guest boot; a stuck VMM must not eat the L1 budget

    # a. one vCPU, bzImage + initrd
    lab_run smp1 "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" \
        --cpus 1 --mem 256M --cmdline "$GUEST_CMDLINE vmmtest=smp1"

    # b. two vCPUs (APs started through INIT/SIPI)
    lab_run smp2 "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" \
        --cpus 2 --mem 512M --cmdline "$GUEST_CMDLINE vmmtest=smp2"

    # c. the uncompressed ELF vmlinux instead of the bzImage
    lab_run vmlinux "$BOOT_SECS" "$VMM" run --kernel "$VMLINUX" --initrd "$INITRD" \
        --cpus 2 --mem 384M --cmdline "$GUEST_CMDLINE vmmtest=vmlinux"

    # d. guest memory from 2M hugetlb pages; a sampler records how many
    #    hugepages were in use while the VMM ran
    #    (the kernel stops allocating them when the writer has a signal
    #    pending, and PID 1 gets SIGCHLD from the orphaned busybox-timeout
    #    watchers of earlier runs: ask again until the count holds)
    for _try in 1 2 3 4 5; do
        echo 200 >/proc/sys/vm/nr_hugepages
        _hp=$(cat /proc/sys/vm/nr_hugepages)
        [ "$_hp" -lt 200 ] || break
        sleep 1
    done
    lab_note hugepages "nr_hugepages=$_hp"
    if [ "$_hp" -lt 128 ]; then
        lab_skip hugepages "L1 could reserve only $_hp 2M pages, 128 needed"
    else
        lab_hugepages_watch_start
        lab_run hugepages "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" \
            --cpus 1 --mem 256M --hugepages 2M --cmdline "$GUEST_CMDLINE vmmtest=hugepages"
        lab_note hugepages "hugepages_used_max=$(lab_hugepages_watch_stop)"
    fi
    echo 0 >/proc/sys/vm/nr_hugepages

    # e. bad input: usage errors (rc 2), one stderr line, no boot
    lab_run bad-mem-zero 30 "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" --mem 0
    lab_run bad-kernel-missing 30 "$VMM" run --kernel /nonexistent --mem 256M
    lab_run bad-kernel-format 30 "$VMM" run --kernel /init --mem 256M
    # 128M, not 64M: with 64M the kernel alone (63 MiB from 2 MiB) does not
    # fit, and the VMM rightly fails on that before it looks at the initrd
    truncate -s 200M /tmp/big-initrd
    lab_run bad-initrd-too-big 30 "$VMM" run --kernel "$KERNEL" --initrd /tmp/big-initrd \
        --mem 128M --cmdline "$GUEST_CMDLINE"
    rm -f /tmp/big-initrd
}

lab_expectations() {
    # What the guest kernel keeps for itself out of --mem.  Debian's 6.1
    # kernel reserves ~46M for its image (code+data+bss) plus its struct page
    # array (1/64 of RAM); measured under QEMU q35: MemTotal = 256M - 50.2M,
    # 384M - 52.8M, 512M - 54.8M.  48M is too tight for this kernel.
    # shellcheck disable=SC2034  # read by check_boot in scripts/lab/run-tests
    MEM_SLACK=64M
    check_boot smp1 nproc=1 mem=256M cmdline=vmmtest=smp1
    check_boot smp2 nproc=2 mem=512M cmdline=vmmtest=smp2
    check_boot vmlinux nproc=2 mem=384M cmdline=vmmtest=vmlinux
    check_boot hugepages nproc=1 mem=256M cmdline=vmmtest=hugepages
    check_note hugepages hugepages_used_max -ge 1
    check_usage_error bad-mem-zero --mem
    check_usage_error bad-kernel-missing /nonexistent
    check_usage_error bad-kernel-format /init
    check_usage_error bad-initrd-too-big initrd
}

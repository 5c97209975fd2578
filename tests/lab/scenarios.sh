# shellcheck shell=sh
# tests/lab/scenarios.sh - the lab scenarios, both halves in one place.
#
# scripts/lab/run-tests sources this file twice:
#  - inside L1 (busybox ash), where it calls lab_scenarios: run things;
#  - on the host (bash), where it calls lab_expectations: check the log.
# Keep it POSIX sh.  To add a scenario, add a lab_run line below and a
# matching check line in lab_expectations, using the same NAME.
#
# Inside L1 (see scripts/lab/l1-lib.sh for lab_run, lab_skip, lab_note, and
# lab_bg_start/_wait/_stop, lab_scratch_fs, lab_sha256 for disk scenarios):
#   $VMM      the VMM under test       $KERNEL   stock bzImage
#   $VMLINUX  ELF vmlinux of it        $INITRD   guest initramfs (uncompressed)
#   $GUEST_CMDLINE  console + reset settings every booting scenario needs
# l1-lib.sh's functions keep their state in variables named _x: use other
# names (blk_x, ...) for loops and values that must survive a lab_run call.
# The guest prints one line, then resets:
#   VMMGUEST nproc=N memtotal_kb=N cmdline=... initrd=<marker>
# With vmmblk=OP,... on its command line it first works on its disks and
# prints "VMMBLK KEY=VALUE" facts (scripts/lab/guest-init has the OPs).
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
#       (or = for strings)
#   check_error NAME RC WORD   like check_usage_error, for exit status RC
#   check_exit NAME RC         the exit status alone
#   check_guest NAME LABEL KEY=VALUE...
#       "VMMBLK KEY=VALUE" lines the guest printed (scripts/lab/guest-init,
#       disk modes) in NAME's console; an empty VALUE means "not reported"
#   check_same LABEL REF REF...
#       the facts REF are all reported and equal; REF is g:NAME:KEY (guest
#       "VMMBLK KEY=" in NAME's console) or l1:NAME:KEY ("VMMLAB NAME KEY=")
#   check_cmocka NAME   NAME ran a cmocka binary: one check per test case
# lab_tiny_scenarios / lab_tiny_expectations are the same pair for the
# tiny-guest tier, which run-tests runs in an L1 boot of its own.
# A scenario that printed "VMMLAB NAME skip: WHY" makes its checks SKIP.

# Disk scenarios (virtio-blk, `vmm run --disk ...`), in run order; all of
# them are skipped while the VMM does not list --disk in `run --help`.
BLK_SCENARIOS="blk-io_uring blk-aio blk-sync blk-intx blk-lock blk-sigkill blk-verify
    blk-bad-key blk-bad-missing blk-bad-dir blk-bad-empty blk-bad-unaligned
    blk-bad-readonly blk-bad-engine"
BLK_MIB=64      # MiB of data each disk scenario writes and checks
MIG_PAGES_MIB=64 # the migration scenarios' page-writing buffer

# Guests run on 2M hugetlb pages (vmm takes them by default when enough are
# free), as vmm is meant to run: L1's KVM then maps them with 2M nested
# page table entries that nothing moves. On L1's transparent huge pages,
# khugepaged and compaction move guest pages under a running guest and
# L1's KVM rewrites its nested page tables each time; a suspected (not
# proven) cause of guests that triple-faulted mid-run under TCG's nested
# SVM (mig-fail in 3 of 4 runs with L1's 2048 MiB; blk-sigkill and rootfs
# once each in a CI run). Guests larger than the pool, and scenarios that
# set a pool of their own, run on what they get; each group returns to
# this pool when it has changed it.
LAB_HUGEPAGES_BASE=384 # 768 MiB: two 256M guests at once, or one of 512M

# lab_hugepages_base: size the pool back to LAB_HUGEPAGES_BASE (the kernel
# stops allocating pages when the writer has a signal pending, and PID 1
# gets SIGCHLD from orphaned watchers: ask again until the count holds)
lab_hugepages_base() {
    for _try in 1 2 3 4 5; do
        echo "$LAB_HUGEPAGES_BASE" >/proc/sys/vm/nr_hugepages
        [ "$(cat /proc/sys/vm/nr_hugepages)" -lt "$LAB_HUGEPAGES_BASE" ] || break
        sleep 1
    done
}

# Each group is self-contained (it sets up and tears down what it uses), so
# that after an L1 wedge run-tests boots L1 again for the groups left
# (lab_group in scripts/lab/l1-lib.sh).
lab_scenarios() {
    GUEST_CMDLINE="console=ttyS0 reboot=k panic=-1"
    BOOT_SECS=120   # per guest boot; a stuck VMM must not eat the L1 budget
    lab_hugepages_base
    # where vmm keeps decompressed kernels (the boot group's a0 fills it)
    export XDG_CACHE_HOME=/tmp/kcache

    lab_group boot lab_boot_scenarios         # a-e. boots, bad input
    lab_group blk lab_blk_scenarios           # f. virtio-blk disks
    lab_group net lab_net_scenarios           # k. virtio-net on a tap
    lab_group fault lab_fault_scenarios       # o. confinement, faults
    lab_group script lab_script_scenarios     # t. scripted runs
    lab_group vfio lab_vfio_scenarios         # u. VFIO of L1's own NICs
    lab_group snapshot lab_snapshot_scenarios # y. snapshots and restores
    lab_group migrate lab_migrate_scenarios   # z. live migration
    lab_group share lab_share_scenarios       # s. shared folders (virtio-fs)
    lab_group rootfs lab_rootfs_scenarios     # d. the Debian disk of make rootfs
}

lab_boot_scenarios() {
    # a0. the bzImage's kernel decompressed on the host into an empty
    #     cache, then found there, each time at random bases (KASLR done by
    #     vmm); nokaslr: at its link address; --no-kernel-cache: nothing
    #     kept. (The cache's unwritable and corrupt cases are unit tests.)
    #     The later boots of every group find the kernel in this cache.
    for _k in kaslr-a kaslr-b nokaslr kernel-no-cache; do
        _kc=/tmp/kcache _ka="--cmdline" _kx=
        case $_k in
            nokaslr) _kx=nokaslr ;;
            kernel-no-cache) _kc=/tmp/kcache2 _ka="--no-kernel-cache --cmdline" ;;
        esac
        [ "$_k" != kaslr-a ] || rm -rf /tmp/kcache /tmp/kcache2
        # shellcheck disable=SC2086  # _ka: one or two words
        lab_run "$_k" "$BOOT_SECS" env XDG_CACHE_HOME="$_kc" "$VMM" run -v --kernel "$KERNEL" \
            --initrd "$INITRD" --mem 256M $_ka "$GUEST_CMDLINE $_kx vmmtest=$_k vmmkaslr=1"
        lab_note "$_k" "decompressed=$(grep -c 'boot: bzImage kernel decompressed on the host' "/tmp/$_k.err")"
        lab_note "$_k" "cached=$(grep -c 'boot: bzImage kernel from the cache, decompressed on the host' "/tmp/$_k.err")"
        lab_note "$_k" "stored=$(grep -c "kernel cache: vmlinux-[0-9a-f]* (xz, [0-9]* bytes) stored in $_kc/vmm" "/tmp/$_k.err")"
        lab_note "$_k" "random=$(grep -c 'boot: bzImage kernel .*, random base$' "/tmp/$_k.err")"
        lab_note "$_k" "unwritable=$(grep -c 'kernel cache: cannot write to ' "/tmp/$_k.err")"
        lab_note "$_k" "cache_files=$(find "$_kc/vmm" -type f 2>/dev/null | wc -l)"
    done

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
    lab_hugepages_base

    # virtio-rng, on by default: /dev/hwrng gives bytes; --no-rng: none.
    # --append adds to the command line.
    lab_run rng "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" \
        --mem 256M --cmdline "$GUEST_CMDLINE" --append "vmmrng=1 vmmtest=append"
    lab_run no-rng "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --initrd "$INITRD" \
        --mem 256M --no-rng --cmdline "$GUEST_CMDLINE vmmrng=1"

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

# The tiny-guest tier (tests/guest: hello, SMP, boot info, and the hostile
# guests attacking virtio-blk and virtio-net) on L1's KVM, plain and ASan.
# scripts/lab/run-tests runs this in an L1 boot of its own.
lab_tiny_scenarios() {
    # L1 says it is alive while the tests run: silence then means L1
    # itself wedged, not a test that hangs (their watchdog reports that)
    (while :; do echo "VMMLAB heartbeat"; sleep 10; done) &
    tiny_hb=$!
    for tiny_x in tests tests-asan; do
        if [ -x "/lab/gt/$tiny_x" ]; then
            # after a wedged boot, only the cases that had no result yet
            tiny_skip=
            if [ -r /lab/tiny-done ]; then
                tiny_skip=$(sed -n "s/^$tiny_x //p" /lab/tiny-done | tr '\n' ',')
            fi
            lab_run "tiny-$tiny_x" 150 env GUEST_TESTS_SKIP="$tiny_skip" \
                sh -c "cd /lab/gt && exec ./$tiny_x"
        else
            lab_skip "tiny-$tiny_x" "build/$tiny_x/guest_tests was not built"
        fi
    done
    kill "$tiny_hb"
}

# L1 has an emulated IOMMU and two NICs of its own (scripts/lab/lib.sh,
# LAB_L1_VFIO): an e1000e with MSI-X at $LAB_VFIO_E1000E and an e1000 with
# INTx only at $LAB_VFIO_E1000, each on a QEMU user network whose DHCP
# server answers (restrict=on: nothing leaves). vmm passes them to the
# guest, which must get a lease through them (scripts/lab/guest-init,
# vmmvfio=).
VFIO_SCENARIOS="vfio-missing vfio-unbound vfio-e1000e vfio-again vfio-e1000 vfio-snapshot"
lab_vfio_scenarios() {
    vf_boot="--kernel $KERNEL --initrd $INITRD --mem 256M"
    if ! "$VMM" run --help 2>&1 | grep -q -- --vfio; then
        vf_why="vmm has no --vfio yet"
    elif [ ! -e "/sys/bus/pci/devices/$LAB_VFIO_E1000E" ]; then
        vf_why="L1 has no NICs to pass (booted without LAB_L1_VFIO=1)"
    else
        vf_why=
    fi
    if [ -n "$vf_why" ]; then
        for vf_n in $VFIO_SCENARIOS; do lab_skip "$vf_n" "$vf_why"; done
        return 0
    fi
    # v. bad devices: not there; there but not bound to vfio-pci (no driver)
    # shellcheck disable=SC2086  # $vf_boot: word splitting intended
    lab_run vfio-missing 30 "$VMM" run $vf_boot --vfio 0000:00:1e.0
    # shellcheck disable=SC2086
    lab_run vfio-unbound 30 "$VMM" run $vf_boot --vfio "$LAB_VFIO_E1000E"
    # w. the e1000e (MSI-X): a lease; then again (the first run let it go)
    for vf_n in vfio-e1000e vfio-again; do
        if vf_why=$(lab_vfio_bind "$LAB_VFIO_E1000E"); then
            # shellcheck disable=SC2086
            lab_run "$vf_n" "$BOOT_SECS" "$VMM" run $vf_boot --vfio "$LAB_VFIO_E1000E" \
                --result json:/tmp/vfio.json --cmdline "$GUEST_CMDLINE vmmtest=$vf_n vmmvfio=e1000e"
            lab_note "$vf_n" "result=$(tr -d '\n' </tmp/vfio.json 2>/dev/null)"
            rm -f /tmp/vfio.json
        else
            lab_skip "$vf_n" "$vf_why"
        fi
    done
    # x. the e1000 (INTx only, level-triggered through the resample irqfd)
    if vf_why=$(lab_vfio_bind "$LAB_VFIO_E1000"); then
        # shellcheck disable=SC2086
        lab_run vfio-e1000 "$BOOT_SECS" "$VMM" run $vf_boot --vfio "$LAB_VFIO_E1000" \
            --result json:/tmp/vfio.json --cmdline "$GUEST_CMDLINE vmmtest=vfio-e1000 vmmvfio=e1000"
        lab_note vfio-e1000 "result=$(tr -d '\n' </tmp/vfio.json 2>/dev/null)"
        rm -f /tmp/vfio.json
    else
        lab_skip vfio-e1000 "$vf_why"
    fi
    # z. a passed-through device cannot be saved: --snapshot-at says so
    #    when the line comes, the run fails, no directory is left
    if vf_why=$(lab_vfio_bind "$LAB_VFIO_E1000"); then
        # shellcheck disable=SC2086
        lab_run vfio-snapshot "$BOOT_SECS" "$VMM" run $vf_boot --vfio "$LAB_VFIO_E1000" \
            --snapshot-at '^VMMGUEST ' --snapshot-dir /tmp/vfsnap \
            --cmdline "$GUEST_CMDLINE vmmtest=vfio-snapshot vmmhang=1"
        lab_note vfio-snapshot "dir_left=$([ -e /tmp/vfsnap ] && echo yes || echo no)"
    else
        lab_skip vfio-snapshot "$vf_why"
    fi
}

# Snapshots (vmm ctl SOCK snapshot DIR, run --snapshot-at, vmm restore).
# A counter guest (vmmcount=1) is paused, snapshotted, its vmm killed and
# the snapshot restored in a new vmm: the counter goes on with the next N.
# shellcheck disable=SC2034  # the list of what follows; nothing reads it yet
SNAP_SCENARIOS="snap-run snap-restore snap-smp snap-smp-restore snap-g1 snap-g2 snap-g3 snap-g4
    snap-blk snap-blk-restore snap-blk-verify snap-net snap-net-restore snap-ci snap-ci-exit3 snap-ci-true
    snap-ci-false snap-paused"

# The counter facts of a console text (FILE, default /tmp/NAME.out, read
# before lab_bg_stop), noted for NAME: first and last N, steps other than
# +1 (gaps), lines, and the guest's wall clock against L1's now (skew_s, at
# 1 s resolution, from the last line whose time is whole: a paused guest's
# "VMMCOUNT 32 17" gave a skew of 56 years). A guest may be paused in the middle of a line, which
# its restored self finishes: the consoles of a snapshot's generations
# joined are one text, and a gap there is a lost or repeated step.
snap_facts() {
    snap_f=$(awk '/^VMMCOUNT [0-9]+ [0-9]+/ { n = $2; if (c++ == 0) f = n; else if (n != p + 1) g++; p = n; if (length($3) >= 10) t = $3 }
        END { printf "%s %s %d %d %s", f, p, g, c, t }' "${2:-/tmp/$1.out}")
    # shellcheck disable=SC2086  # five words
    set -- "$1" $snap_f
    lab_note "$1" "first=$2"
    lab_note "$1" "last=$3"
    lab_note "$1" "gaps=$4"
    lab_note "$1" "lines=$5"
    snap_skew=
    [ -z "$6" ] || snap_skew=$(($(date +%s) - $6))
    [ -z "$snap_skew" ] || lab_note "$1" "skew_s=$snap_skew"
    snap_last=$3
}

# Note the reply of "vmm ctl SOCK snapshot DIR" (NAME, reply): ok, the
# pause in ms, the size on disk.
snap_reply() {
    lab_note "$1" "snapshot=$2"
    lab_note "$1" "snapshot_ok=$(echo "$2" | grep -c '"ok": *true')"
    lab_note "$1" "pause_ms=$(echo "$2" | sed -n 's/.*"pause_ms": *\([0-9]*\).*/\1/p')"
    lab_note "$1" "size_kib=$(($(echo "$2" | sed -n 's/.*"size_bytes": *\([0-9]*\).*/\1/p') / 1024))"
}

# Pause NAME's guest (socket /tmp/NAME.sock), add its console to the
# generations' text (/tmp/snap-console), note the counter facts of that
# text, snapshot the guest into DIR and kill its vmm.
snap_take() {
    lab_note "$1" "pause=$("$VMM" ctl "/tmp/$1.sock" pause)"
    sleep 0.5
    cat "/tmp/$1.out" >>/tmp/snap-console
    snap_facts "$1" /tmp/snap-console
    snap_reply "$1" "$("$VMM" ctl "/tmp/$1.sock" snapshot "$2")"
    lab_note "$1" "du_kib=$(du -sk "$2" | cut -f 1)"
    lab_bg_stop "$1"
}

# The disk scenarios' RAM disk file system at /img: the blk group makes it;
# a group booted again after a wedge, without the blk group, makes it here
# (every group that uses /img calls this first).
lab_img_fs() {
    [ -d /img ] || lab_scratch_fs /img >/dev/null 2>&1
}

lab_snapshot_scenarios() {
    lab_img_fs
    ss_boot="--kernel $KERNEL --initrd $INITRD"
    rm -rf /tmp/snap
    mkdir -p /tmp/snap
    # the jail: vmm writes API snapshots as nobody, beneath --snapshot-dir
    chmod 1777 /tmp/snap
    # y1. a 512 MiB counter guest, paused and snapshotted; restored: the
    #     next N, no gap, and the guest's clock as right as before
    rm -f /tmp/snap-console
    # shellcheck disable=SC2086  # $ss_boot: word splitting intended
    lab_bg_start snap-run "$VMM" run $ss_boot --mem 512M --api-socket /tmp/snap-run.sock --snapshot-dir /tmp/snap \
        --cmdline "$GUEST_CMDLINE vmmtest=snap-run vmmcount=1"
    if lab_bg_wait snap-run "VMMCOUNT 30 " "$BOOT_SECS"; then
        snap_take snap-run /tmp/snap/run
        ss_skew=$snap_skew
    else
        lab_bg_stop snap-run
    fi
    lab_bg_start snap-restore "$VMM" restore /tmp/snap/run
    if lab_bg_wait snap-restore "VMMCOUNT $((snap_last + 30)) " 60; then
        cat /tmp/snap-console /tmp/snap-restore.out >/tmp/snap-joined
        snap_facts snap-restore /tmp/snap-joined
        ss_d=$((snap_skew - ss_skew))
        lab_note snap-restore "skew_drift_s=${ss_d#-}"
    fi
    lab_bg_stop snap-restore

    # y2. two busy vCPUs and a guest on 2M hugetlb pages, snapshotted while
    #     running, restored (into hugepages) and counting on
    echo 300 >/proc/sys/vm/nr_hugepages
    # shellcheck disable=SC2086
    lab_bg_start snap-smp "$VMM" run $ss_boot --mem 256M --cpus 2 --hugepages 2M \
        --api-socket /tmp/snap-smp.sock --snapshot-dir /tmp/snap --cmdline "$GUEST_CMDLINE vmmtest=snap-smp vmmbusy=2 vmmcount=1"
    if lab_bg_wait snap-smp "VMMCOUNT 20 " "$BOOT_SECS"; then
        snap_reply snap-smp "$("$VMM" ctl /tmp/snap-smp.sock snapshot /tmp/snap/smp)"
        sleep 1
        snap_facts snap-smp
    fi
    lab_bg_stop snap-smp
    lab_bg_start snap-smp-restore "$VMM" restore /tmp/snap/smp -v
    if lab_bg_wait snap-smp-restore "VMMCOUNT " 60; then
        sleep 3
        snap_facts snap-smp-restore
        lab_note snap-smp-restore "hugetlb=$(grep -c 'hugetlb 2M' /tmp/snap-smp-restore.err)"
    fi
    lab_bg_stop snap-smp-restore
    rm -rf /tmp/snap/smp
    lab_hugepages_base

    # y3. three generations: restore, count, snapshot, restore, ...
    rm -f /tmp/snap-console
    # shellcheck disable=SC2086
    lab_bg_start snap-g1 "$VMM" run $ss_boot --mem 256M --api-socket /tmp/snap-g1.sock --snapshot-dir /tmp/snap \
        --cmdline "$GUEST_CMDLINE vmmtest=snap-g1 vmmcount=1"
    lab_bg_wait snap-g1 "VMMCOUNT 10 " "$BOOT_SECS" && snap_take snap-g1 /tmp/snap/g1
    for ss_g in 2 3; do
        lab_bg_start "snap-g$ss_g" "$VMM" restore "/tmp/snap/g$((ss_g - 1))" \
            --api-socket "/tmp/snap-g$ss_g.sock" --snapshot-dir /tmp/snap
        lab_bg_wait "snap-g$ss_g" "VMMCOUNT $((snap_last + 10)) " 60 &&
            snap_take "snap-g$ss_g" "/tmp/snap/g$ss_g"
        rm -rf "/tmp/snap/g$((ss_g - 1))"
    done
    lab_bg_start snap-g4 "$VMM" restore /tmp/snap/g3
    if lab_bg_wait snap-g4 "VMMCOUNT $((snap_last + 10)) " 60; then
        cat /tmp/snap-console /tmp/snap-g4.out >/tmp/snap-joined
        snap_facts snap-g4 /tmp/snap-joined
    fi
    lab_bg_stop snap-g4
    rm -rf /tmp/snap/g3 /tmp/snap-console /tmp/snap-joined

    # y4. files written and synced on ext4 across a snapshot: the restored
    #     guest writes the rest; a fresh boot reads every file back and
    #     e2fsck finds the file system clean
    if [ -x /sbin/mke2fs ] && [ -x /sbin/e2fsck ] && [ -d /img ]; then
        truncate -s 128M /img/snap.img
        /sbin/mke2fs -q -F -t ext4 /img/snap.img
        # shellcheck disable=SC2086
        lab_bg_start snap-blk "$VMM" run $ss_boot --mem 256M --api-socket /tmp/snap-blk.sock --snapshot-dir /tmp/snap \
            --disk path=/img/snap.img --cmdline "$GUEST_CMDLINE vmmtest=snap-blk vmmblk=fsstream:vda"
        if lab_bg_wait snap-blk "VMMBLK fsynced=4" "$BOOT_SECS"; then
            lab_note snap-blk "pause=$("$VMM" ctl /tmp/snap-blk.sock pause)"
            snap_reply snap-blk "$("$VMM" ctl /tmp/snap-blk.sock snapshot /tmp/snap/blk)"
        fi
        # The guest may have been paused in the middle of a line: the
        # restored one prints the rest, so the two consoles are one text.
        sleep 1
        cp /tmp/snap-blk.out /tmp/snap-blk.gen1
        lab_bg_stop snap-blk
        lab_bg_start snap-blk-restore "$VMM" restore /tmp/snap/blk
        lab_bg_wait snap-blk-restore "VMMBLK fsynced=32" 120
        cat /tmp/snap-blk.gen1 /tmp/snap-blk-restore.out |
            sed -n 's/^VMMBLK \(file[0-9]*_sha256=.*\)/\1/p' >/tmp/snap-files
        lab_bg_stop snap-blk-restore
        # shellcheck disable=SC2086
        lab_run snap-blk-verify "$BOOT_SECS" "$VMM" run $ss_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=snap-blk-verify vmmblk=fsverify:vda" --disk path=/img/snap.img
        while read -r ss_f; do lab_note snap-blk-verify "$ss_f"; done </tmp/snap-files
        /sbin/e2fsck -fn /img/snap.img >/tmp/e2fsck.out 2>&1
        lab_note snap-blk-verify "e2fsck_rc=$?"
        rm -rf /img/snap.img /tmp/snap/blk /tmp/snap-files /tmp/snap-blk.gen1
    else
        for ss_n in snap-blk snap-blk-restore snap-blk-verify; do
            lab_skip "$ss_n" "no e2fsprogs or /img RAM disk in L1"
        done
    fi

    # y5. virtio-net: snapshotted once the link works, restored on the same
    #     (persistent) tap: L1 pings the restored guest, then a new TCP
    #     transfer each way (the guest's wget from L1, L1's from the guest)
    if [ -c /dev/net/tun ] && command -v tunctl >/dev/null; then
        mkdir -p /srv
        dd if=/dev/urandom of=/srv/data bs=1M count=8 2>/dev/null
        lab_note snap-net-restore "down_sha256=$(lab_sha256 /srv/data)"
        tunctl -t vmtap5 >/dev/null
        ip addr add 10.0.78.1/24 dev vmtap5
        ip link set vmtap5 up
        httpd -p 10.0.78.1:8080 -h /srv
        # shellcheck disable=SC2086
        lab_bg_start snap-net "$VMM" run $ss_boot --mem 256M --api-socket /tmp/snap-net.sock --snapshot-dir /tmp/snap \
            --net tap=vmtap5 --cmdline "$GUEST_CMDLINE vmmtest=snap-net vmmnet=10.0.78.2/24 vmmnet_peer=10.0.78.1 vmmnet_mib=8"
        if lab_bg_wait snap-net "VMMNET up=1" "$BOOT_SECS"; then
            lab_note snap-net "pause=$("$VMM" ctl /tmp/snap-net.sock pause)"
            snap_reply snap-net "$("$VMM" ctl /tmp/snap-net.sock snapshot /tmp/snap/net)"
        fi
        lab_bg_stop snap-net
        lab_bg_start snap-net-restore "$VMM" restore /tmp/snap/net
        if ping -c 3 -W 5 10.0.78.2 >/dev/null 2>&1; then ss_p=ok; else ss_p=failed; fi
        lab_note snap-net-restore "l1_ping=$ss_p"
        lab_net_exchange snap-net-restore 10.0.78.2
        killall httpd 2>/dev/null
        tunctl -d vmtap5 >/dev/null
        rm -rf /tmp/snap/net /srv/data
    else
        for ss_n in snap-net snap-net-restore; do lab_skip "$ss_n" "no /dev/net/tun or tunctl in L1"; done
    fi

    # y6. the CI flow: one boot to VMMREADY (--snapshot-at), then a restore
    #     per command, each piped in and ending vmm with its status
    # shellcheck disable=SC2086
    lab_run snap-ci "$BOOT_SECS" "$VMM" run $ss_boot --mem 256M \
        --snapshot-at '^VMMREADY' --snapshot-dir /tmp/snap/ci \
        --cmdline "$GUEST_CMDLINE vmmtest=snap-ci vmmcmd=1"
    lab_note snap-ci "state_file=$([ -f /tmp/snap/ci/state ] && echo yes || echo no)"
    for ss_c in "exit3:exit 3" "true:grep -q vmmcmd=1 /proc/cmdline" "false:test -e /nonexistent"; do
        lab_run "snap-ci-${ss_c%%:*}" 60 sh -c "echo '${ss_c#*:}' | \"\$0\" restore /tmp/snap/ci" "$VMM"
    done

    # y7. restored --paused and snapshotted again: every section but the
    #     clocks' (vm: kvmclock, PIT; vcpuN: TSC, LAPIC timer) byte for byte
    #     the same, and guest RAM too but for the 12 bytes of kvmclock's wall
    #     clock structure, which KVM rewrites when its MSR is restored
    lab_bg_start snap-paused "$VMM" restore /tmp/snap/ci --paused --api-socket /tmp/snap-paused.sock --snapshot-dir /tmp/snap
    ss_i=0
    while [ ! -S /tmp/snap-paused.sock ] && [ "$ss_i" -lt 50 ]; do sleep 0.2; ss_i=$((ss_i + 1)); done
    lab_note snap-paused "status=$("$VMM" ctl /tmp/snap-paused.sock status)"
    snap_reply snap-paused "$("$VMM" ctl /tmp/snap-paused.sock snapshot /tmp/snap/ci2)"
    lab_bg_stop snap-paused
    "$VMM" snapshot-info /tmp/snap/ci | grep -v -E '^(vm|vcpu[0-9]+) ' >/tmp/snap-info1
    "$VMM" snapshot-info /tmp/snap/ci2 | grep -v -E '^(vm|vcpu[0-9]+) ' >/tmp/snap-info2
    lab_note snap-paused "sections=$(grep -c crc32 /tmp/snap-info1)"
    lab_note snap-paused "sections_same=$(cmp -s /tmp/snap-info1 /tmp/snap-info2 && echo yes || echo no)"
    cmp -l /tmp/snap/ci/memory /tmp/snap/ci2/memory >/tmp/snap-cmp 2>/dev/null
    lab_note snap-paused "memory_diff_bytes=$(wc -l </tmp/snap-cmp)"
    lab_note snap-paused "memory_diff_span=$(awk 'NR == 1 { f = $1 } { l = $1 } END { print NR ? l - f + 1 : 0 }' /tmp/snap-cmp)"
    rm -f /tmp/snap-cmp
    diff /tmp/snap-info1 /tmp/snap-info2 | sed -n 's/^[<>] /VMMLAB snap-paused diff: /p'
    rm -rf /tmp/snap /tmp/snap-info1 /tmp/snap-info2
}

# The exit device, --timeout, --expect, --fail, --result and the control
# socket, as a CI script uses them.
# ---- z. live migration: two vmm processes in this L1 ----
# The source runs with --api-socket /tmp/NAME.sock; the destination is
# "vmm run --incoming unix:/tmp/NAME.mig" (NAME-dst).

# mig_dest NAME [OPTIONS]: start NAME-dst listening, wait for its socket.
mig_dest() {
    _md=$1
    shift
    rm -f "/tmp/$_md.mig"
    lab_bg_start "$_md-dst" "$VMM" run --incoming "unix:/tmp/$_md.mig" -v "$@"
    _i=0
    while [ ! -S "/tmp/$_md.mig" ] && [ "$_i" -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
}

# mig_go NAME [KEY=VALUE...]: migrate NAME's guest to NAME-dst, wait (up
# to 400 s) for the source vmm to end, note the reply and what its done
# line says (total_ms, paused_ms, rounds, pages, zero, bytes, ram), stop it.
mig_go() {
    _mg=$1
    shift
    lab_note "$_mg" "reply=$("$VMM" ctl "/tmp/$_mg.sock" migrate "unix:/tmp/$_mg.mig" "$@")"
    _i=0
    while _lab_alive "$(cat "/tmp/$_mg.pid")" && [ "$_i" -lt 4000 ]; do
        sleep 0.1
        _i=$((_i + 1))
        [ $((_i % 200)) != 0 ] || echo "VMMLAB $_mg still migrating"
    done
    sed -n 's/.*migrate: done in \([0-9]*\) ms, paused \([0-9.]*\) ms: \([0-9]*\) rounds, \([0-9]*\) pages (\([0-9]*\) zero), \([0-9]*\) bytes sent for \([0-9]*\) of RAM/total_ms=\1 paused_ms=\2 rounds=\3 pages=\4 zero=\5 bytes=\6 ram=\7/p' \
        "/tmp/$_mg.err" | tr ' ' '\n' | while read -r _f; do lab_note "$_mg" "$_f"; done
    cp "/tmp/$_mg.out" "/tmp/$_mg.src"
    lab_bg_stop "$_mg"
}

# mig_status NAME LABEL: note LABEL_state and LABEL_error of the source's
# migration, once it is no longer active (up to 30 s)
mig_status() {
    _i=0
    while _st=$("$VMM" ctl "/tmp/$1.sock" status) && [ "$_i" -lt 300 ]; do
        case $_st in
            *'"state":"active"'* | *'"state":"stopping"'*) sleep 0.1; _i=$((_i + 1)) ;;
            *) break ;;
        esac
    done
    lab_note "$1" "$2_state=$(echo "$_st" | sed -n 's/.*"migration":{"state":"\([a-z]*\)".*/\1/p')"
    lab_note "$1" "$2_error=$(echo "$_st" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')"
}

# mig_ticks NAME: the largest VMMTICK gap (ms) in NAME's console so far
mig_ticks() {
    lab_note "$1" "max_gap_ms=$(sed -n 's/^VMMTICK n=[0-9]* max_gap_ms=\([0-9]*\).*/\1/p' "/tmp/$1.out" | sort -n | tail -n 1)"
    lab_note "$1" "ticks=$(grep -c '^VMMTICK ' "/tmp/$1.out")"
}

lab_migrate_scenarios() {
    lab_img_fs
    mg_boot="--kernel $KERNEL --initrd $INITRD"
    mg_cmd="$GUEST_CMDLINE vmmhang=1"
    # z1. an idle guest: its downtime from inside (10 ms ticks) and outside
    # shellcheck disable=SC2086  # $mg_boot: word splitting intended
    lab_bg_start mig-idle "$VMM" run $mg_boot --mem 256M --api-socket /tmp/mig-idle.sock -v \
        --cmdline "$mg_cmd vmmtest=mig-idle vmmtick=1"
    if lab_bg_wait mig-idle "VMMTICK n=3 " "$BOOT_SECS"; then
        mig_dest mig-idle
        mig_go mig-idle
        lab_bg_wait mig-idle-dst "VMMTICK n=" 30 && sleep 3
        mig_ticks mig-idle-dst
    else
        lab_bg_stop mig-idle
    fi
    lab_bg_stop mig-idle-dst

    # z2. a guest writing a pass number into every page of a buffer: no
    #     page went backwards or was lost at the destination
    # shellcheck disable=SC2086
    lab_bg_start mig-pages "$VMM" run $mg_boot --mem 512M --api-socket /tmp/mig-pages.sock -v \
        --cmdline "$mg_cmd vmmtest=mig-pages vmmpages=$MIG_PAGES_MIB vmmtick=1"
    if lab_bg_wait mig-pages "VMMPAGES pass=3 " "$BOOT_SECS"; then
        mig_dest mig-pages
        mig_go mig-pages
        # the source's last pass, then at least three more here
        mg_pass=$(sed -n 's/^VMMPAGES pass=\([0-9]*\) .*/\1/p' /tmp/mig-pages.src | tail -n 1)
        lab_bg_wait mig-pages-dst "VMMPAGES pass=" 60 && sleep 8
        lab_note mig-pages-dst "passes_after=$(($(sed -n 's/^VMMPAGES pass=\([0-9]*\) .*/\1/p' /tmp/mig-pages-dst.out | tail -n 1) - mg_pass))"
        lab_note mig-pages-dst "bad=$(sed -n 's/^VMMPAGES pass=[0-9]* bad=\([0-9]*\)/\1/p' /tmp/mig-pages-dst.out | tail -n 1)"
        mig_ticks mig-pages-dst
    else
        lab_bg_stop mig-pages
    fi
    lab_bg_stop mig-pages-dst
    rm -f /tmp/mig-pages.src

    # z3. two busy vCPUs counting: the count goes on at the destination
    #     with no step lost or repeated
    # shellcheck disable=SC2086
    lab_bg_start mig-smp "$VMM" run $mg_boot --mem 256M --cpus 2 --api-socket /tmp/mig-smp.sock \
        --cmdline "$GUEST_CMDLINE vmmtest=mig-smp vmmbusy=2 vmmcount=1"
    if lab_bg_wait mig-smp "VMMCOUNT 20 " "$BOOT_SECS"; then
        mig_dest mig-smp
        mig_go mig-smp
        lab_bg_wait mig-smp-dst "VMMCOUNT " 60 && sleep 3
        cat /tmp/mig-smp.src /tmp/mig-smp-dst.out >/tmp/mig-smp.joined
        snap_facts mig-smp-dst /tmp/mig-smp.joined
        lab_note mig-smp-dst "nproc=$(grep -c 'VMMGUEST nproc=2 ' /tmp/mig-smp.joined)"
    else
        lab_bg_stop mig-smp
    fi
    lab_bg_stop mig-smp-dst
    rm -f /tmp/mig-smp.src /tmp/mig-smp.joined /tmp/mig-idle.src

    # z4. files written and synced on ext4 during the migration: the
    #     destination writes the rest, a fresh boot reads every file back,
    #     e2fsck finds the file system clean
    if [ -x /sbin/mke2fs ] && [ -x /sbin/e2fsck ] && [ -d /img ]; then
        truncate -s 128M /img/mig.img
        /sbin/mke2fs -q -F -t ext4 /img/mig.img
        # shellcheck disable=SC2086
        lab_bg_start mig-blk "$VMM" run $mg_boot --mem 256M --api-socket /tmp/mig-blk.sock -v \
            --disk path=/img/mig.img --cmdline "$GUEST_CMDLINE vmmtest=mig-blk vmmblk=fsstream:vda"
        if lab_bg_wait mig-blk "VMMBLK fsynced=4" "$BOOT_SECS"; then
            mig_dest mig-blk
            mig_go mig-blk
            lab_bg_wait mig-blk-dst "VMMBLK fsynced=32" 200
            cat /tmp/mig-blk.src /tmp/mig-blk-dst.out |
                sed -n 's/^VMMBLK \(file[0-9]*_sha256=.*\)/\1/p' >/tmp/mig-files
        else
            lab_bg_stop mig-blk
            : >/tmp/mig-files
        fi
        lab_bg_stop mig-blk-dst
        # shellcheck disable=SC2086
        lab_run mig-blk-verify "$BOOT_SECS" "$VMM" run $mg_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=mig-blk-verify vmmblk=fsverify:vda" --disk path=/img/mig.img
        while read -r mg_f; do lab_note mig-blk-verify "$mg_f"; done </tmp/mig-files
        /sbin/e2fsck -fn /img/mig.img >/tmp/e2fsck.out 2>&1
        lab_note mig-blk-verify "e2fsck_rc=$?"
        rm -f /img/mig.img /tmp/mig-files /tmp/mig-blk.src
    else
        for mg_n in mig-blk mig-blk-dst mig-blk-verify; do
            lab_skip "$mg_n" "no e2fsprogs or /img RAM disk in L1"
        done
    fi

    # z5. failures leave the source's guest running, its disk usable:
    #     the destination killed mid-way, a cancel, a timeout; then one
    #     that works from the same source
    truncate -s 64M /img/mig-fail.img 2>/dev/null || truncate -s 64M /tmp/mig-fail.img
    mg_img=/img/mig-fail.img
    [ -e "$mg_img" ] || mg_img=/tmp/mig-fail.img
    /sbin/mke2fs -q -F -t ext4 "$mg_img" 2>/dev/null
    # shellcheck disable=SC2086
    lab_bg_start mig-fail "$VMM" run $mg_boot --mem 512M --api-socket /tmp/mig-fail.sock -v \
        --disk "path=$mg_img" --cmdline "$mg_cmd vmmtest=mig-fail vmmpages=$MIG_PAGES_MIB vmmtick=1"
    if lab_bg_wait mig-fail "VMMPAGES pass=2 " "$BOOT_SECS"; then
        # the destination dies once the pages flow
        mig_dest mig-fail
        lab_note mig-fail "kill_reply=$("$VMM" ctl /tmp/mig-fail.sock migrate unix:/tmp/mig-fail.mig)"
        _i=0
        until "$VMM" ctl /tmp/mig-fail.sock status | grep -q '"bytes_sent": *[1-9]' || [ "$_i" -ge 100 ]; do
            sleep 0.1
            _i=$((_i + 1))
        done
        lab_bg_stop mig-fail-dst
        mig_status mig-fail kill
        # a cancel
        mig_dest mig-fail
        lab_note mig-fail "cancel_reply=$("$VMM" ctl /tmp/mig-fail.sock migrate unix:/tmp/mig-fail.mig)"
        lab_note mig-fail "cancel=$("$VMM" ctl /tmp/mig-fail.sock migrate-cancel)"
        mig_status mig-fail cancel
        lab_bg_stop mig-fail-dst
        # a timeout: 1 s is far too short for 512 MiB here
        mig_dest mig-fail
        lab_note mig-fail "timeout_reply=$("$VMM" ctl /tmp/mig-fail.sock migrate unix:/tmp/mig-fail.mig timeout_s=1)"
        mig_status mig-fail timeout
        lab_bg_stop mig-fail-dst
        # nobody listening
        lab_note mig-fail "noconn_reply=$("$VMM" ctl /tmp/mig-fail.sock migrate unix:/tmp/nobody.mig)"
        mig_status mig-fail noconn
        # still running, still writing pages and its disk
        mg_pass=$(sed -n 's/^VMMPAGES pass=\([0-9]*\) .*/\1/p' /tmp/mig-fail.out | tail -n 1)
        lab_bg_wait mig-fail "VMMPAGES pass=$((mg_pass + 2)) " 60 && lab_note mig-fail "runs_on=1"
        lab_note mig-fail "bad=$(sed -n 's/^VMMPAGES pass=[0-9]* bad=\([0-9]*\)/\1/p' /tmp/mig-fail.out | tail -n 1)"
        mig_dest mig-fail
        mig_go mig-fail
        lab_bg_wait mig-fail-dst "VMMPAGES pass=" 60
        lab_bg_stop mig-fail-dst
    else
        lab_bg_stop mig-fail
    fi
    rm -f "$mg_img"

    # z6. local: a guest on shared 2M pages handed over to a new vmm
    #     process as memfds (nothing copied): its pages all there, its
    #     downtime from inside
    echo 140 >/proc/sys/vm/nr_hugepages
    # shellcheck disable=SC2086
    lab_bg_start mig-local "$VMM" run $mg_boot --mem 256M --hugepages 2M --mem-shared -v \
        --api-socket /tmp/mig-local.sock --cmdline "$mg_cmd vmmtest=mig-local vmmpages=$MIG_PAGES_MIB vmmtick=1"
    if lab_bg_wait mig-local "VMMPAGES pass=2 " "$BOOT_SECS"; then
        rm -f /tmp/mig-local.mig
        lab_bg_start mig-local-dst "$VMM" run --incoming unix:/tmp/mig-local.mig -v
        _i=0
        while [ ! -S /tmp/mig-local.mig ] && [ "$_i" -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
        lab_note mig-local "reply=$("$VMM" ctl /tmp/mig-local.sock migrate local:/tmp/mig-local.mig)"
        _i=0
        while _lab_alive "$(cat /tmp/mig-local.pid)" && [ "$_i" -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
        lab_note mig-local "paused_ms=$(sed -n 's/.*migrate: done in [0-9]* ms, paused \([0-9]*\).* ms.*/\1/p' /tmp/mig-local.err)"
        lab_note mig-local "bytes=$(sed -n 's/.* \([0-9]*\) bytes sent for .*/\1/p' /tmp/mig-local.err)"
        mg_pass=$(sed -n 's/^VMMPAGES pass=\([0-9]*\) .*/\1/p' /tmp/mig-local.out | tail -n 1)
        lab_bg_stop mig-local
        lab_bg_wait mig-local-dst "VMMPAGES pass=" 60 && sleep 5
        lab_note mig-local-dst "passes_after=$(($(sed -n 's/^VMMPAGES pass=\([0-9]*\) .*/\1/p' /tmp/mig-local-dst.out | tail -n 1) - mg_pass))"
        lab_note mig-local-dst "bad=$(sed -n 's/^VMMPAGES pass=[0-9]* bad=\([0-9]*\)/\1/p' /tmp/mig-local-dst.out | tail -n 1)"
        lab_note mig-local-dst "shared=$(grep -c 'shared memfd, from the source' /tmp/mig-local-dst.err)"
        mig_ticks mig-local-dst
    else
        lab_bg_stop mig-local
    fi
    lab_bg_stop mig-local-dst
    lab_hugepages_base

    # z7. a TCP transfer from the guest to L1 across the move: the tap
    #     goes from one vmm to the other, the data arrives whole
    if [ -c /dev/net/tun ] && command -v tunctl >/dev/null; then
        mkdir -p /srv
        dd if=/dev/urandom of=/srv/data bs=1M count=1 2>/dev/null
        tunctl -t vmtap6 >/dev/null
        ip addr add 10.0.79.1/24 dev vmtap6
        ip link set vmtap6 up
        httpd -p 10.0.79.1:8080 -h /srv
        # shellcheck disable=SC2086
        lab_bg_start mig-net "$VMM" run $mg_boot --mem 256M --api-socket /tmp/mig-net.sock -v \
            --net tap=vmtap6 --cmdline "$GUEST_CMDLINE vmmtest=mig-net vmmnet=10.0.79.2/24 vmmnet_peer=10.0.79.1 vmmnet_mib=24"
        if lab_bg_wait mig-net "VMMNET serving=1" 200; then
            rm -f /tmp/up.rc
            ( (wget -q -O - http://10.0.79.2:8080/up; echo "$?" >/tmp/up.rc) | sha256sum | cut -d ' ' -f 1 >/tmp/up.sha) &
            mg_wget=$!
            sleep 1
            mig_dest mig-net
            mig_go mig-net
            _i=0
            while [ ! -e /tmp/up.rc ] && [ "$_i" -lt 600 ]; do
                sleep 0.2
                _i=$((_i + 1))
                [ $((_i % 100)) != 0 ] || echo "VMMLAB mig-net-dst still waiting"
            done
            wait "$mg_wget"
            lab_note mig-net-dst "up_sha256=$(cat /tmp/up.sha)"
            lab_note mig-net-dst "up_rc=$(cat /tmp/up.rc 2>/dev/null)"
            wget -q -O /dev/null http://10.0.79.2:8080/cgi-bin/done
            lab_bg_wait mig-net-dst "VMMNET done=1" 60
        else
            lab_bg_stop mig-net
        fi
        lab_bg_stop mig-net-dst
        killall httpd 2>/dev/null
        tunctl -d vmtap6 >/dev/null
        rm -f /srv/data /tmp/up.sha /tmp/up.rc /tmp/mig-net.src
    else
        for mg_n in mig-net mig-net-dst; do lab_skip "$mg_n" "no /dev/net/tun or tunctl in L1"; done
    fi

    # z8. refusals: a destination without the huge pages the source's
    #     guest is on; options the machine comes from the source for
    echo 70 >/proc/sys/vm/nr_hugepages
    # shellcheck disable=SC2086
    lab_bg_start mig-refuse "$VMM" run $mg_boot --mem 128M --hugepages 2M \
        --api-socket /tmp/mig-refuse.sock --cmdline "$mg_cmd vmmtest=mig-refuse vmmtick=1"
    if lab_bg_wait mig-refuse "VMMTICK n=1 " "$BOOT_SECS"; then
        mig_dest mig-refuse
        lab_note mig-refuse "reply=$("$VMM" ctl /tmp/mig-refuse.sock migrate unix:/tmp/mig-refuse.mig)"
        mig_status mig-refuse refuse
        lab_bg_wait mig-refuse-dst "never printed: wait for the exit" 10
        lab_bg_stop mig-refuse-dst
        lab_bg_wait mig-refuse "VMMTICK n=4 " 30 && lab_note mig-refuse "runs_on=1"
    fi
    lab_bg_stop mig-refuse
    lab_hugepages_base
    lab_run mig-bad-mem 30 "$VMM" run --incoming unix:/tmp/x.mig --mem 1G
}

lab_migrate_expectations() {
    check_exit mig-idle 0
    check_note mig-idle rounds -ge 1
    check_note mig-idle-dst ticks -ge 3
    check_note mig-idle-dst max_gap_ms -ge 10
    check_exit mig-pages 0
    check_note mig-pages rounds -ge 1
    check_note mig-pages-dst bad = 0
    check_note mig-pages-dst passes_after -ge 3
    check_exit mig-smp 0
    check_note mig-smp-dst gaps -eq 0
    check_note mig-smp-dst lines -ge 25
    check_note mig-smp-dst nproc = 1
    check_exit mig-blk 0
    check_guest mig-blk-dst files fsynced=32 error=
    check_boot mig-blk-verify nproc=1 cmdline=vmmtest=mig-blk-verify
    check_guest mig-blk-verify files verified=32 error=
    i=1
    while [ "$i" -le 32 ]; do
        check_same "mig-blk-verify/file$i" "l1:mig-blk-verify:file${i}_sha256" \
            "g:mig-blk-verify:vfile${i}_sha256"
        i=$((i + 1))
    done
    check_note mig-blk-verify e2fsck_rc = 0
    check_note mig-fail kill_state = failed
    check_note mig-fail cancel_state = cancelled
    check_note mig-fail timeout_state = failed
    check_note mig-fail timeout_error = "not done within timeout_s=1"
    check_note mig-fail noconn_state = failed
    check_note mig-fail runs_on = 1
    check_note mig-fail bad = 0
    check_exit mig-fail 0
    check_note mig-local paused_ms -ge 0
    check_note mig-local bytes = 0
    check_exit mig-local 0
    check_note mig-local-dst shared = 1
    check_note mig-local-dst bad = 0
    check_note mig-local-dst passes_after -ge 3
    check_exit mig-net 0
    check_note mig-net rounds -ge 1
    check_net mig-net tcp ping=ok down_rc=0 serving=1
    check_same mig-net/up l1:mig-net-dst:up_sha256 n:mig-net:up_sha256
    check_note mig-net-dst up_rc = 0
    check_net mig-net-dst tcp fetched=yes done=1 error=
    check_note mig-refuse refuse_state = failed
    check_note mig-refuse runs_on = 1
    check_exit mig-refuse-dst 1
    check_usage_error mig-bad-mem "--mem"
}

lab_script_scenarios() {
    sc_boot="--kernel $KERNEL --initrd $INITRD --mem 256M"
    # the guest writes 7 to the exit device; the summary is written
    # shellcheck disable=SC2086  # $sc_boot: word splitting intended
    lab_run exit7 "$BOOT_SECS" "$VMM" run $sc_boot --result json:/tmp/r.json \
        --cmdline "$GUEST_CMDLINE vmmtest=exit7 vmmexit=7"
    lab_note exit7 "result=$(tr -d '\n' </tmp/r.json 2>/dev/null)"
    rm -f /tmp/r.json
    # a guest that never ends: --timeout 10 stops it, 124
    # shellcheck disable=SC2086
    lab_run timeout 60 "$VMM" run $sc_boot --timeout 10 \
        --cmdline "$GUEST_CMDLINE vmmtest=timeout vmmhang=1"
    # --expect ends the boot at the marker (the guest would hang after it)
    # shellcheck disable=SC2086
    lab_run expect "$BOOT_SECS" "$VMM" run $sc_boot --timeout 100 --expect '^VMMGUEST nproc=' \
        --cmdline "$GUEST_CMDLINE vmmtest=expect vmmhang=1"
    # --fail catches the panic of a guest booted with a bad root (no initrd)
    lab_run fail "$BOOT_SECS" "$VMM" run --kernel "$KERNEL" --mem 256M --fail 'Kernel panic' \
        --cmdline "console=ttyS0 reboot=k panic=-1 root=/dev/vdz"
    # the control socket on a running guest that prints its uptime twice a
    # second: status, pause for 3 s (a gap in the guest's clock), resume,
    # stats, then stop (Ctrl-Alt-Del: the guest resets, exit 0)
    rm -f /tmp/api.sock
    # shellcheck disable=SC2086
    lab_bg_start api "$VMM" run $sc_boot --api-socket /tmp/api.sock \
        --cmdline "$GUEST_CMDLINE vmmtest=api vmmtick=1"
    if lab_bg_wait api "VMMTICK " "$BOOT_SECS"; then
        sleep 2
        lab_note api "status1=$("$VMM" ctl /tmp/api.sock status)"
        lab_note api "pause=$("$VMM" ctl /tmp/api.sock pause)"
        lab_note api "status2=$("$VMM" ctl /tmp/api.sock status)"
        sleep 3
        lab_note api "resume=$("$VMM" ctl /tmp/api.sock resume)"
        sleep 2
        lab_note api "stats=$("$VMM" ctl /tmp/api.sock stats)"
        lab_note api "bogus_rc=$("$VMM" ctl /tmp/api.sock bogus >/dev/null 2>&1; echo $?)"
        lab_note api "stop=$("$VMM" ctl /tmp/api.sock stop)"
        lab_bg_wait api "never printed: wait for the exit" 30
    fi
    lab_note api "max_tick_gap_s=$(sed -n 's/^VMMTICK \([0-9.]*\).*/\1/p' /tmp/api.out |
        awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { printf "%.1f", m }')"
    lab_bg_stop api
    lab_note api "socket_left=$([ -e /tmp/api.sock ] && echo yes || echo no)"
}

# seccomp, a user without root, and VMMs killed in the middle of guest
# writes (the images on the RAM disk at /img, from lab_blk_scenarios).
# shellcheck disable=SC2034  # the list of what follows; nothing reads it yet
FAULT_SCENARIOS="sc-kill sc-off nonroot jail term-stream kill-stream fs-kill fs-verify"
lab_fault_scenarios() {
    lab_img_fs
    fault_boot="--kernel $KERNEL --initrd $INITRD"
    # p. the filter is on: a forbidden call (the test hook) kills vmm with
    #    SIGSYS and one line naming it; with --no-seccomp the same boots
    # shellcheck disable=SC2086  # $fault_boot: word splitting intended
    lab_run sc-kill 60 env VMM_TEST_SECCOMP=1 "$VMM" run $fault_boot --mem 256M \
        --cmdline "$GUEST_CMDLINE vmmtest=sc-kill"
    # shellcheck disable=SC2086
    lab_run sc-off "$BOOT_SECS" env VMM_TEST_SECCOMP=1 "$VMM" run $fault_boot --mem 256M \
        --no-seccomp --cmdline "$GUEST_CMDLINE vmmtest=sc-off"

    # q. an ordinary user with rw on /dev/kvm, a disk image of their own
    #    and a tap made for them (see README, "Running as a user")
    mkdir -p /etc
    if ! grep -q '^lab:' /etc/passwd 2>/dev/null; then
        echo 'lab:x:1000:1000:lab:/tmp:/bin/sh' >>/etc/passwd
        echo 'lab:x:1000:' >>/etc/group
    fi
    if [ -d /img ] && [ -c /dev/net/tun ] && [ -x /lab/iproute2-ip ]; then
        chmod 0666 /dev/kvm /dev/net/tun
        truncate -s 64M /img/user.img
        chown 1000:1000 /img/user.img
        /lab/iproute2-ip tuntap add mode tap name vmtapu user 1000
        cat >/tmp/nonroot.sh <<NONROOT
#!/bin/sh
exec $VMM run $fault_boot --mem 256M --disk path=/img/user.img --net tap=vmtapu \\
    --cmdline "$GUEST_CMDLINE vmmtest=nonroot vmmblk=raw:vda vmmblk_mib=8"
NONROOT
        chmod 755 /tmp/nonroot.sh
        lab_run nonroot "$BOOT_SECS" su -s /bin/sh -c /tmp/nonroot.sh lab
        lab_note nonroot "image_sha256=$(lab_sha256 /img/user.img 8)"
        /lab/iproute2-ip tuntap del mode tap name vmtapu
        chmod 0600 /dev/kvm /dev/net/tun
        rm -f /img/user.img
    else
        lab_skip nonroot "no /img RAM disk, no /dev/net/tun or no iproute2 in L1"
    fi

    # q2. the jail, vmm started as root: while the guest writes its disk and
    #     moves data both ways over a tap, vmm is nobody with no capability,
    #     no_new_privs, seccomp and namespaces of its own; its console works
    #     and --snapshot-at writes the snapshot into --snapshot-dir
    if [ -d /img ] && [ -c /dev/net/tun ] && command -v tunctl >/dev/null; then
        truncate -s 64M /img/jail.img
        mkdir -p /srv
        dd if=/dev/urandom of=/srv/data bs=1M count=8 2>/dev/null
        lab_note jail "down_sha256=$(lab_sha256 /srv/data)"
        tunctl -t vmtapj >/dev/null
        ip addr add 10.0.76.1/24 dev vmtapj
        ip link set vmtapj up
        httpd -p 10.0.76.1:8080 -h /srv
        rm -rf /tmp/jail-snap
        # shellcheck disable=SC2086
        lab_bg_start jail "$VMM" run $fault_boot --mem 256M --disk path=/img/jail.img --net tap=vmtapj \
            --snapshot-at '^VMMREADY' --snapshot-dir /tmp/jail-snap \
            --cmdline "$GUEST_CMDLINE vmmtest=jail vmmblk=raw:vda vmmblk_mib=8 vmmnet=10.0.76.2/24 vmmnet_peer=10.0.76.1 vmmnet_mib=8 vmmcmd=1"
        if lab_bg_wait jail "VMMNET up=1" "$BOOT_SECS"; then
            jail_pid=$(cat /tmp/jail.pid)
            lab_note jail "uid=$(awk '/^Uid:/ { print $2 }' "/proc/$jail_pid/status")"
            lab_note jail "gid=$(awk '/^Gid:/ { print $2 }' "/proc/$jail_pid/status")"
            lab_note jail "caps_set=$(grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' "/proc/$jail_pid/status" | grep -vc ':[[:space:]]*0000000000000000$')"
            lab_note jail "no_new_privs=$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$jail_pid/status")"
            lab_note jail "seccomp=$(awk '/^Seccomp:/ { print $2 }' "/proc/$jail_pid/status")"
            jail_own=0
            for jail_ns in mnt net ipc uts; do
                [ "$(readlink "/proc/$jail_pid/ns/$jail_ns")" = "$(readlink "/proc/self/ns/$jail_ns")" ] ||
                    jail_own=$((jail_own + 1))
            done
            lab_note jail "own_namespaces=$jail_own"
        fi
        lab_net_exchange jail 10.0.76.2
        jail_files=0
        for jail_f in state memory; do [ ! -f "/tmp/jail-snap/$jail_f" ] || jail_files=$((jail_files + 1)); done
        lab_note jail "snapshot_files=$jail_files"
        lab_note jail "snapshot_by_nobody=$([ "$(stat -c %u /tmp/jail-snap/state 2>/dev/null)" = 65534 ] && echo 1 || echo 0)"
        killall httpd 2>/dev/null
        tunctl -d vmtapj >/dev/null
        rm -rf /tmp/jail-snap /srv /img/jail.img
    else
        lab_skip jail "no /img RAM disk, no /dev/net/tun or no tunctl in L1"
    fi

    # r. SIGTERM, then SIGKILL, while the guest streams fsync'd 4 MiB chunks
    #    to a raw disk: every chunk whose fsync returned is in the image
    for fault_sig in TERM KILL; do
        # shellcheck disable=SC2018,SC2019  # signal names are ASCII
        fault_n=$(echo "$fault_sig" | tr 'A-Z' 'a-z')-stream
        truncate -s 128M /img/stream.img
        # shellcheck disable=SC2086
        lab_bg_start "$fault_n" "$VMM" run $fault_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=$fault_n vmmblk=stream:vda vmmblk_mib=128" \
            --disk path=/img/stream.img
        if lab_bg_wait "$fault_n" "VMMBLK synced=4" "$BOOT_SECS"; then
            kill -s "$fault_sig" "$(cat "/tmp/$fault_n.pid")"
            lab_bg_wait "$fault_n" "never printed: wait for the exit" 30
        fi
        lab_bg_stop "$fault_n"
        fault_i=1
        while [ "$fault_i" -le 32 ]; do
            lab_note "$fault_n" "chunk${fault_i}_sha256=$(dd if=/img/stream.img bs=4M skip=$((fault_i - 1)) count=1 2>/dev/null | sha256sum | cut -d ' ' -f 1)"
            fault_i=$((fault_i + 1))
        done
        rm -f /img/stream.img
    done

    # s. SIGKILL while the guest writes files on ext4 and syncs after each:
    #    a fresh boot finds every synced file whole (the journal replayed),
    #    and e2fsck then finds the file system clean
    if [ -x /sbin/mke2fs ] && [ -x /sbin/e2fsck ]; then
        truncate -s 128M /img/fs.img
        /sbin/mke2fs -q -F -t ext4 /img/fs.img
        # shellcheck disable=SC2086
        lab_bg_start fs-kill "$VMM" run $fault_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=fs-kill vmmblk=fsstream:vda" --disk path=/img/fs.img
        if lab_bg_wait fs-kill "VMMBLK fsynced=6" "$BOOT_SECS"; then
            kill -9 "$(cat /tmp/fs-kill.pid)"
            lab_bg_wait fs-kill "never printed: wait for the exit" 30
        fi
        lab_bg_stop fs-kill
        # shellcheck disable=SC2086
        lab_run fs-verify "$BOOT_SECS" "$VMM" run $fault_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=fs-verify vmmblk=fsverify:vda" --disk path=/img/fs.img
        /sbin/e2fsck -fn /img/fs.img >/tmp/e2fsck.out 2>&1
        lab_note fs-verify "e2fsck_rc=$?"
        sed -n '1,5s/^/VMMLAB fs-verify e2fsck: /p' /tmp/e2fsck.out
        rm -f /img/fs.img
    else
        for fault_n in fs-kill fs-verify; do lab_skip "$fault_n" "no e2fsprogs in L1"; done
    fi
}

# The tap's far end is L1 itself: L1 serves NET_MIB MiB over busybox httpd
# on the tap's address and the guest fetches it, then the guest serves
# NET_MIB MiB of its own and L1 fetches that (scripts/lab/guest-init,
# vmmnet=; see lab_net_exchange).  The addresses live on the tap inside L1
# only: no packet leaves the lab's machines.
NET_SCENARIOS="net-tcp net-busy net-mq user-net vsock net-bad-mac net-bad-tap vsock-bad-cid vsock-bad-dir"
NET_MIB=100
VSOCK_MIB=50

# lab_net_exchange NAME GUEST_IP [PORT]: with the VMM of NAME running in the
# background, wait for its guest to serve, fetch NET_MIB MiB from it (up_*
# facts) at GUEST_IP:PORT (8080), tell it we are done, and wait for it to end.
lab_net_exchange() {
    if lab_bg_wait "$1" "VMMNET serving=1" 300; then
        _url=http://$2:${3:-8080}
        _sha=$( (wget -q -O - "$_url/up"; echo "$?" >/tmp/up.rc) | sha256sum | cut -d ' ' -f 1)
        lab_note "$1" "up_sha256=$_sha"
        lab_note "$1" "up_rc=$(cat /tmp/up.rc)"
        wget -q -O /dev/null "$_url/cgi-bin/done"
    fi
    lab_bg_wait "$1" "never printed: wait for the exit" 60
    lab_bg_stop "$1"
}

# lab_net_wait_tap NAME: wait (up to 30 s) for a tap vmm creates
lab_net_wait_tap() {
    _i=0
    while [ ! -e "/sys/class/net/$1" ] && [ "$_i" -lt 150 ]; do sleep 0.2; _i=$((_i + 1)); done
    [ -e "/sys/class/net/$1" ]
}

lab_net_scenarios() {
    if ! "$VMM" run --help 2>&1 | grep -q -- --net; then
        net_why="vmm has no --net yet (not in 'vmm run --help')"
    elif [ ! -c /dev/net/tun ]; then
        net_why="no /dev/net/tun in L1 (tun module not loaded)"
    else
        net_why=
    fi
    if [ -n "$net_why" ]; then
        for net_n in $NET_SCENARIOS; do lab_skip "$net_n" "$net_why"; done
        return 0
    fi
    net_boot="--kernel $KERNEL --initrd $INITRD"
    mkdir -p /srv
    dd if=/dev/urandom of=/srv/data bs=1M count="$NET_MIB" 2>/dev/null
    lab_note net-tcp "down_sha256=$(lab_sha256 /srv/data)"

    # l. a tap made beforehand (tunctl, persistent), one queue pair: ping
    #    and NET_MIB MiB each way.  While that guest runs, a second VMM on
    #    the same tap must fail: exit 1, "in use" (net-busy).
    tunctl -t vmtap0 >/dev/null
    ip addr add 10.0.77.1/24 dev vmtap0
    ip link set vmtap0 up
    httpd -p 10.0.77.1:8080 -h /srv
    # shellcheck disable=SC2086  # $net_boot: word splitting intended
    lab_bg_start net-tcp "$VMM" run $net_boot --cpus 1 --mem 512M \
        --cmdline "$GUEST_CMDLINE vmmtest=net-tcp vmmnet=10.0.77.2/24 vmmnet_peer=10.0.77.1 vmmnet_mib=$NET_MIB" \
        --net tap=vmtap0,mac=52:54:00:12:34:56
    if lab_bg_wait net-tcp "VMMNET up=1" "$BOOT_SECS"; then
        # shellcheck disable=SC2086
        lab_run net-busy 30 "$VMM" run $net_boot --mem 256M --cmdline "$GUEST_CMDLINE" \
            --net tap=vmtap0
    else
        lab_skip net-busy "the guest of net-tcp never brought its link up"
    fi
    lab_net_exchange net-tcp 10.0.77.2
    killall httpd 2>/dev/null
    tunctl -d vmtap0 >/dev/null

    # m. two vCPUs, two queue pairs on a tap vmm creates itself (multi-queue):
    #    L1 gives it an address once it appears
    # shellcheck disable=SC2086
    lab_bg_start net-mq "$VMM" run $net_boot --cpus 2 --mem 512M \
        --cmdline "$GUEST_CMDLINE vmmtest=net-mq vmmnet=10.0.78.2/24 vmmnet_peer=10.0.78.1 vmmnet_mib=$NET_MIB" \
        --net tap=vmtapq,queues=2
    if lab_net_wait_tap vmtapq; then
        ip addr add 10.0.78.1/24 dev vmtapq
        httpd -p 10.0.78.1:8080 -h /srv
        lab_note net-mq "tap_created=yes"
    else
        lab_note net-mq "tap_created=no"
    fi
    lab_net_exchange net-mq 10.0.78.2
    killall httpd 2>/dev/null

    # p. --net user: passt, as L1's own user-mode network (a dummy
    #    interface gives L1 the default route passt takes its addresses
    #    from). DHCP; the host's server through the gateway, which passt
    #    maps to L1's loopback; the guest's server through a forwarded port.
    if ! command -v passt >/dev/null; then
        lab_skip user-net "no passt in L1 (the host has no passt package)"
    elif ! /lab/iproute2-ip link add vmdummy0 type dummy 2>/dev/null; then
        lab_skip user-net "no dummy interface in L1 (dummy module)"
    else
        ip addr add 10.0.90.1/24 dev vmdummy0
        ip link set vmdummy0 up
        ip route add default via 10.0.90.254 dev vmdummy0
        ip link set lo up # where passt takes the guest's connections to its gateway
        mkdir -p /srv/user
        dd if=/dev/urandom of=/srv/user/data bs=1M count=16 2>/dev/null
        lab_note user-net "down_sha256=$(lab_sha256 /srv/user/data)"
        httpd -p 127.0.0.1:8080 -h /srv/user
        # passt sandboxes itself with pivot_root, which L1's root, the
        # initramfs, refuses: vmm finds a passt that runs the real one in a
        # mount namespace of its own whose root is a bind mount of / moved
        # over it, as switch_root does (a root pivot_root takes, and not a
        # chroot, in which passt could not make its user namespace)
        mkdir -p /tmp/passt-root /tmp/passt-bin
        cat >/tmp/passt-bin/passt <<'PASST'
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -o rbind / /tmp/passt-root &&
    cd /tmp/passt-root && mount -o move . / && exec chroot . /usr/bin/passt "$@"' passt "$@"
PASST
        chmod 755 /tmp/passt-bin/passt
        # shellcheck disable=SC2086
        lab_bg_start user-net env PATH="/tmp/passt-bin:$PATH" "$VMM" run $net_boot --mem 512M -v \
            --cmdline "$GUEST_CMDLINE vmmtest=user-net vmmnet=dhcp vmmnet_mib=16" \
            --net user,forward=tcp:18080:8080
        lab_net_exchange user-net 127.0.0.1 18080
        killall httpd 2>/dev/null
        /lab/iproute2-ip link del vmdummy0
    fi

    # q. vsock: VSOCK_MIB MiB each way with a host program, once through the
    #    hybrid socket (host-initiated: "CONNECT 5000") and once from the
    #    guest to CID 2 port 6000 (L1's listener at PATH_6000)
    if ! command -v vmmvsock >/dev/null; then
        lab_skip vsock "no vmmvsock in L1"
    else
        mkdir -p /srv/vsock
        dd if=/dev/urandom of=/srv/vsock/data bs=1M count="$VSOCK_MIB" 2>/dev/null
        lab_note vsock "data_sha256=$(lab_sha256 /srv/vsock/data)"
        # (umask 0: a socket the jailed vmm, nobody, may connect to)
        (umask 0 && vmmvsock hlisten /tmp/vsock.sock_6000 </srv/vsock/data 2>/tmp/vsock-g.err |
            sha256sum | cut -d ' ' -f 1 >/tmp/vsock-g.sha) &
        vsock_pid=$!
        # shellcheck disable=SC2086
        lab_bg_start vsock "$VMM" run $net_boot --mem 512M \
            --cmdline "$GUEST_CMDLINE vmmtest=vsock vmmvsock=$VSOCK_MIB" \
            --vsock cid=7,socket=/tmp/vsock.sock
        if lab_bg_wait vsock "VMMVSOCK listening" "$BOOT_SECS"; then
            lab_note vsock "h_up_sha256=$(vmmvsock hconnect /tmp/vsock.sock 5000 \
                </srv/vsock/data 2>/tmp/vsock-h.err | sha256sum | cut -d ' ' -f 1)"
            lab_note vsock "h_host_stats=$(grep sent= /tmp/vsock-h.err | tr ' ' ,)"
        fi
        lab_bg_wait vsock "never printed: wait for the exit" 120
        lab_bg_stop vsock
        kill "$vsock_pid" 2>/dev/null
        wait "$vsock_pid" 2>/dev/null
        lab_note vsock "g_up_sha256=$(cat /tmp/vsock-g.sha)"
        lab_note vsock "g_host_stats=$(grep sent= /tmp/vsock-g.err | tr ' ' ,)"
        # vmm removed its socket; L1's own listener is ours to remove
        lab_note vsock "socket_left=$(test -e /tmp/vsock.sock && echo yes || echo no)"
        rm -f /tmp/vsock.sock_6000 /tmp/vsock-*
    fi
    rm -rf /srv

    # n. bad --net values: usage errors (rc 2), one stderr line, no boot
    # shellcheck disable=SC2086
    lab_run net-bad-mac 30 "$VMM" run $net_boot --mem 256M --net tap=t0,mac=01:02:03:04:05:06
    # shellcheck disable=SC2086
    lab_run net-bad-tap 30 "$VMM" run $net_boot --mem 256M --net tap=lo
    # shellcheck disable=SC2086
    lab_run vsock-bad-cid 30 "$VMM" run $net_boot --mem 256M --vsock cid=2,socket=/tmp/v.sock
    # shellcheck disable=SC2086
    lab_run vsock-bad-dir 30 "$VMM" run $net_boot --mem 256M --vsock cid=3,socket=/nonexistent/v.sock
}

# --share: virtiofsd serves an L1 folder; the guest reads what L1 wrote and
# writes what L1 then reads (scripts/lab/guest-init, vmmfs=), once as root
# with a second, read-only share, and once as an ordinary user.
SHARE_SCENARIOS="share share-user share-bad-missing share-bad-file fs-bad-socket"
SHARE_MIB=16
VSOCK_USER_MIB=8

# virtiofsd's default sandbox pivots into the folder, which L1's root (the
# initramfs) refuses: vmm finds this one on PATH (/tmp/virtiofsd-bin) first,
# with the chroot sandbox (root, or root in vmm's user namespace, may chroot)
lab_virtiofsd_wrapper() {
    mkdir -p /tmp/virtiofsd-bin
    # shellcheck disable=SC2016  # "$@" is the wrapper's
    printf '#!/bin/sh\nexec /usr/lib/qemu/virtiofsd "$@" -o sandbox=chroot\n' \
        >/tmp/virtiofsd-bin/virtiofsd
    chmod 755 /tmp/virtiofsd-bin/virtiofsd
}

lab_share_scenarios() {
    if ! "$VMM" run --help 2>&1 | grep -q -- --share; then
        share_why="vmm has no --share yet (not in 'vmm run --help')"
    elif [ ! -x /usr/lib/qemu/virtiofsd ]; then
        share_why="no virtiofsd in L1 (the host has no qemu-system-common)"
    else
        share_why=
    fi
    if [ -n "$share_why" ]; then
        for share_n in $SHARE_SCENARIOS; do lab_skip "$share_n" "$share_why"; done
        return 0
    fi
    share_boot="--kernel $KERNEL --initrd $INITRD --mem 512M"
    lab_virtiofsd_wrapper
    mkdir -p /srv/share /srv/ro
    dd if=/dev/urandom of=/srv/share/host.bin bs=1M count="$SHARE_MIB" 2>/dev/null
    cp /srv/share/host.bin /srv/ro/host.bin
    lab_note share "host_sha256=$(lab_sha256 /srv/share/host.bin)"

    # s. as root: a read-write share and a read-only one
    # shellcheck disable=SC2086  # $share_boot: word splitting intended
    lab_run share "$BOOT_SECS" env PATH="/tmp/virtiofsd-bin:$PATH" "$VMM" run $share_boot \
        --share /srv/share,tag=hostfs --share /srv/ro,tag=rofs,readonly=on \
        --cmdline "$GUEST_CMDLINE vmmtest=share vmmfs=hostfs,rofs vmmfs_mib=$SHARE_MIB"
    lab_note share "guest_file_sha256=$(lab_sha256 /srv/share/guest.bin 2>/dev/null)"
    lab_note share "ro_new_file=$(test -e /srv/ro/new && echo yes || echo no)"

    # s2. as an ordinary user (virtiofsd in a user namespace vmm makes),
    #     without supplementary groups: Debian 12's virtiofsd drops them,
    #     which a user namespace does not allow. The same boot has a vsock
    #     device whose sockets are the user's: VSOCK_USER_MIB MiB each way
    #     with the user's programs, host- and guest-initiated.
    mkdir -p /etc
    if ! grep -q '^lab:' /etc/passwd 2>/dev/null; then
        echo 'lab:x:1000:1000:lab:/tmp:/bin/sh' >>/etc/passwd
        echo 'lab:x:1000:' >>/etc/group
    fi
    mkdir -p /tmp/ushare /tmp/ushare-run
    cp /srv/share/host.bin /tmp/ushare/host.bin
    chown -R 1000:1000 /tmp/ushare /tmp/ushare-run
    chmod 0666 /dev/kvm
    share_as_user="/lab/setpriv --reuid=1000 --regid=1000 --clear-groups"
    cat >/tmp/share-user.sh <<SHAREUSER
#!/bin/sh
exec env PATH="/tmp/virtiofsd-bin:\$PATH" XDG_RUNTIME_DIR=/tmp/ushare-run $VMM run $share_boot --share /tmp/ushare,tag=hostfs \\
    --vsock cid=8,socket=/tmp/ushare-run/v.sock \\
    --cmdline "$GUEST_CMDLINE vmmtest=share-user vmmfs=hostfs vmmfs_mib=$SHARE_MIB vmmvsock=$VSOCK_USER_MIB"
SHAREUSER
    chmod 755 /tmp/share-user.sh
    # shellcheck disable=SC2086  # $share_as_user: word splitting intended
    ($share_as_user vmmvsock hlisten /tmp/ushare-run/v.sock_6000 </tmp/ushare/host.bin 2>/dev/null |
        sha256sum | cut -d ' ' -f 1 >/tmp/share-user-g.sha) &
    share_vs_pid=$!
    # shellcheck disable=SC2086
    lab_bg_start share-user $share_as_user /tmp/share-user.sh
    if lab_bg_wait share-user "VMMVSOCK listening" "$BOOT_SECS"; then
        # shellcheck disable=SC2086
        lab_note share-user "vsock_h_up_sha256=$($share_as_user vmmvsock hconnect \
            /tmp/ushare-run/v.sock 5000 </tmp/ushare/host.bin 2>/dev/null | sha256sum | cut -d ' ' -f 1)"
    fi
    lab_bg_wait share-user "never printed: wait for the exit" "$BOOT_SECS"
    lab_bg_stop share-user
    kill "$share_vs_pid" 2>/dev/null
    wait "$share_vs_pid" 2>/dev/null
    lab_note share-user "vsock_g_up_sha256=$(cat /tmp/share-user-g.sha)"
    chmod 0600 /dev/kvm
    lab_note share-user "guest_file_sha256=$(lab_sha256 /tmp/ushare/guest.bin 2>/dev/null)"
    lab_note share-user "owner=$(stat -c %u /tmp/ushare/guest.bin 2>/dev/null)"
    rm -f /tmp/ushare-run/v.sock_6000 # the user's listener; vmm's socket and virtiofsd's must be gone
    lab_note share-user "run_dir_left=$(find /tmp/ushare-run -mindepth 1 | wc -l)"
    rm -rf /tmp/ushare /tmp/ushare-run /srv/share /srv/ro /tmp/share-user.sh /tmp/share-user-g.sha

    # s3. bad input: one line, no boot
    # shellcheck disable=SC2086
    lab_run share-bad-missing 30 "$VMM" run $share_boot --share /nonexistent/dir
    # shellcheck disable=SC2086
    lab_run share-bad-file 30 "$VMM" run $share_boot --share /lab/bzImage
    # shellcheck disable=SC2086
    lab_run fs-bad-socket 30 "$VMM" run $share_boot --fs tag=x,socket=/nonexistent.sock
}

# The Debian disk of `make rootfs` (run-tests gives it to L1 as /dev/vda,
# its kernel and initrd in /lab/rootfs): vmm boots it from the block device
# with a share, to systemd's login prompt on the console; L1 logs in as
# root there (vmm feeds its stdin to the console) and asks whether the
# multi-user target is active and what the share holds, then reboots.
lab_rootfs_scenarios() {
    if [ -e /lab/rootfs.skip ]; then
        lab_skip rootfs "$(cat /lab/rootfs.skip)"
        return 0
    elif [ ! -b /dev/vda ] || [ ! -x /usr/lib/qemu/virtiofsd ]; then
        lab_skip rootfs "no /dev/vda (the Debian disk) or no virtiofsd in L1"
        return 0
    fi
    lab_virtiofsd_wrapper
    mkdir -p /srv/rshare
    echo "hello from L1, $(date)" >/srv/rshare/hello.txt
    lab_note rootfs "share_sha256=$(lab_sha256 /srv/rshare/hello.txt)"
    rm -f /tmp/rootfs.in
    mkfifo /tmp/rootfs.in
    rootfs_t0=$(lab_now)
    lab_bg_start rootfs sh -c "exec env PATH=/tmp/virtiofsd-bin:\$PATH $VMM run \
        --kernel /lab/rootfs/vmlinuz --initrd /lab/rootfs/initrd.img --mem 1G \
        --disk path=/dev/vda --append root=/dev/vda --share /srv/rshare,tag=share \
        </tmp/rootfs.in"
    exec 7>/tmp/rootfs.in # the console's input, open until the end
    if lab_bg_wait rootfs "vmm-guest login:" 600; then
        lab_note rootfs "login_prompt_s=$(awk -v a="$rootfs_t0" -v b="$(lab_now)" \
            'BEGIN { printf "%.1f", b - a }')"
        printf 'root\n' >&7
        if lab_bg_wait rootfs "root@vmm-guest" 120; then
            # shellcheck disable=SC2016  # for the guest's shell
            printf '%s\n' 'echo VMMROOTFS target=$(systemctl is-active multi-user.target) share=$(sha256sum /mnt/share/hello.txt | cut -c 1-64) root=$(findmnt -n -o SOURCE /); reboot' >&7
        fi
    fi
    lab_bg_wait rootfs "never printed: wait for the exit" 300
    exec 7>&-
    lab_note rootfs "target=$(lab_rootfs_fact target)"
    lab_note rootfs "guest_share_sha256=$(lab_rootfs_fact share)"
    lab_note rootfs "guest_root=$(lab_rootfs_fact root)"
    lab_bg_stop rootfs
    rm -rf /srv/rshare /tmp/rootfs.in
}

# lab_rootfs_fact KEY: KEY= of the guest's last "VMMROOTFS ..." line (the
# one its shell printed, not the command line it echoed before)
lab_rootfs_fact() {
    sed -n "s/.*VMMROOTFS .*$1=\([^ ]*\).*/\1/p" /tmp/rootfs.out | tr -d '\r' | tail -n 1
}

# Images live on an ext2 file system on a RAM disk (/img, see
# lab_scratch_fs): tmpfs would refuse cache=none (O_DIRECT).  What the guest
# does with its disks is set by vmmblk= (see scripts/lab/guest-init).  Boots
# are what cost time here, so each boot checks several things.
lab_blk_scenarios() {
    if ! "$VMM" run --help 2>&1 | grep -q -- --disk; then
        blk_why="vmm has no --disk yet (not in 'vmm run --help')"
    elif blk_why=$(lab_scratch_fs /img); then
        blk_why=
    fi
    if [ -n "$blk_why" ]; then
        for blk_n in $BLK_SCENARIOS; do lab_skip "$blk_n" "$blk_why"; done
        return 0
    fi
    blk_boot="--kernel $KERNEL --initrd $INITRD"
    blk_cmd="$GUEST_CMDLINE vmmblk_mib=$BLK_MIB"

    # g. each I/O engine, two disks: the guest formats vda (ext2) and writes
    #    BLK_MIB MiB of random data to a file on it, and the same bytes raw
    #    to vdb (fsync); L1 then reads vdb's image file (blk-verify reads
    #    vda's file after a reboot).  io_uring also runs with 2 vCPUs and 2
    #    request queues on vda.  The asynchronous engines run with
    #    cache=none (O_DIRECT), sync with cache=writeback.
    for blk_eng in io_uring aio sync; do
        blk_cache=none blk_cpus=1 blk_q=
        [ "$blk_eng" != sync ] || blk_cache=writeback
        [ "$blk_eng" != io_uring ] || { blk_cpus=2; blk_q=,queues=2; }
        truncate -s 256M "/img/fs-$blk_eng.img"
        truncate -s 128M /img/raw.img
        # shellcheck disable=SC2086  # $blk_boot: word splitting intended
        lab_run "blk-$blk_eng" "$BOOT_SECS" "$VMM" run $blk_boot --cpus "$blk_cpus" --mem 384M \
            --cmdline "$blk_cmd vmmtest=blk-$blk_eng vmmblk=fs:vda,raw:vdb" \
            --disk "path=/img/fs-$blk_eng.img,engine=$blk_eng,cache=$blk_cache,serial=lab-$blk_eng$blk_q" \
            --disk "path=/img/raw.img,engine=$blk_eng,cache=$blk_cache"
        lab_note "blk-$blk_eng" "image_sha256=$(lab_sha256 /img/raw.img "$BLK_MIB")"
        lab_note "blk-$blk_eng" "image_bytes=$(stat -c %s "/img/fs-$blk_eng.img"),$(stat -c %s /img/raw.img)"
        rm -f /img/raw.img
    done

    # g2. no MSI-X (pci=nomsi): the INTx fallback, level-triggered, one
    #    line for both queues of a 2-vCPU guest; then the driver unloads
    #    (device reset) and loads again, and reads the data back
    truncate -s 64M /img/intx.img
    # shellcheck disable=SC2086
    lab_run blk-intx "$BOOT_SECS" "$VMM" run $blk_boot --cpus 2 --mem 384M \
        --cmdline "$GUEST_CMDLINE pci=nomsi vmmblk_mib=16 vmmtest=blk-intx vmmblk=raw:vda,reload:vda" \
        --disk "path=/img/intx.img,queues=2"
    lab_note blk-intx "image_sha256=$(lab_sha256 /img/intx.img 16)"
    rm -f /img/intx.img

    # h. SIGKILL right after the guest's fsync returned (page cache of the
    #    host, cache=writeback): what it wrote must be in the image file.
    #    While that guest holds its disk, a second VMM on the same image
    #    must fail: exit 1, "locked" (blk-lock).
    truncate -s 128M /img/kill.img
    # shellcheck disable=SC2086
    lab_bg_start blk-sigkill "$VMM" run $blk_boot --cpus 1 --mem 384M \
        --cmdline "$blk_cmd vmmtest=blk-sigkill vmmblk=raw:vda,hold" \
        --disk "path=/img/kill.img,cache=writeback"
    if lab_bg_wait blk-sigkill "VMMBLK holding=1" "$BOOT_SECS"; then
        # shellcheck disable=SC2086
        lab_run blk-lock 30 "$VMM" run $blk_boot --cpus 1 --mem 256M \
            --cmdline "$GUEST_CMDLINE vmmtest=blk-lock" --disk "path=/img/kill.img"
    else
        lab_skip blk-lock "the guest of blk-sigkill never held its disk"
    fi
    lab_bg_stop blk-sigkill
    lab_note blk-sigkill "image_sha256=$(lab_sha256 /img/kill.img "$BLK_MIB")"

    # i. one boot, five disks, each VMM engine: the file systems of g. (does
    #    the data survive a reboot), the image of h. (the killed VMM's lock
    #    must be gone), and a readonly=on disk that the guest tries to write
    #    (it must see it read-only, the write must fail, the bytes stay).
    #    Last, the driver is unloaded and loaded again (MSI-X this time)
    #    and the killed VMM's data is read once more.
    #    The read-only image sits on a read-only (bind) mount, so that the
    #    VMM cannot open it for writing either.
    mkdir -p /img/ro /ro
    dd if=/dev/urandom of=/img/ro/ro.img bs=1M count=1 2>/dev/null
    truncate -s 64M /img/ro/ro.img
    mount -o bind /img/ro /ro && mount -o remount,bind,ro /ro
    if touch /ro/probe 2>/dev/null; then blk_rofs=no; else blk_rofs=yes; fi
    lab_note blk-verify "ro_mount=$blk_rofs"
    lab_note blk-verify "ro_sha256_before=$(lab_sha256 /ro/ro.img 1)"
    # shellcheck disable=SC2086
    lab_run blk-verify "$BOOT_SECS" "$VMM" run $blk_boot --cpus 1 --mem 256M \
        --cmdline "$blk_cmd vmmtest=blk-verify vmmblk=fsread:vda,fsread:vdb,fsread:vdc,rawread:vdd,ro:vde,reload:vdd" \
        --disk "path=/img/fs-io_uring.img,engine=io_uring,cache=none" \
        --disk "path=/img/fs-aio.img,engine=aio,cache=none" \
        --disk "path=/img/fs-sync.img,engine=sync" \
        --disk "path=/img/kill.img" \
        --disk "path=/ro/ro.img,readonly=on,serial=lab-ro"
    lab_note blk-verify "ro_sha256_after=$(lab_sha256 /ro/ro.img 1)"
    umount /ro
    rm -rf /img/fs-*.img /img/kill.img /img/ro

    # j. bad --disk values: usage errors (rc 2), one stderr line, no boot
    truncate -s 64M /img/good.img
    mkdir -p /img/adir
    : >/img/empty.img
    truncate -s 1000 /img/odd.img
    for blk_t in "key path=/img/good.img,bogus=1" "missing path=/img/missing.img" \
              "dir path=/img/adir" "empty path=/img/empty.img" "unaligned path=/img/odd.img" \
              "readonly path=/img/good.img,readonly=maybe" "engine path=/img/good.img,engine=warp"; do
        # shellcheck disable=SC2086
        lab_run "blk-bad-${blk_t%% *}" 30 "$VMM" run $blk_boot --mem 256M \
            --cmdline "$GUEST_CMDLINE" --disk "${blk_t#* }"
    done
    rm -rf /img/good.img /img/adir /img/empty.img /img/odd.img
}

# lab_kernel_facts NAME DECOMPRESSED CACHED STORED RANDOM UNWRITABLE FILES:
# what vmm -v said of the kernel it loaded, and the cache files left
lab_kernel_facts() {
    kf_n=$1
    shift
    for kf_k in decompressed cached stored random unwritable cache_files; do
        check_note "$kf_n" "$kf_k" = "$1"
        shift
    done
}

# lab_kaslr_moved NAME...: each boot's kernel sits at a 2M-aligned base
# (virtual _text and physical "Kernel code"), and the boots do not all sit
# at the link address (each is there by chance about once in 400)
lab_kaslr_moved() {
    km_moved=0 km_why=
    for km_n in "$@"; do
        scenario_rc "$km_n" kaslr/moved || return 0
        km_t=$(gfact "$km_n" text) km_c=$(gfact "$km_n" code)
        case $km_t$km_c in
            *[!0-9a-f]* | "") km_why="$km_why $km_n: text='$km_t' code='$km_c';" ;;
            *)
                if [ $(((0x${km_t#ffffffff} | 0x$km_c) & 0x1fffff)) != 0 ]; then
                    km_why="$km_why $km_n: text=$km_t code=$km_c not 2M-aligned;"
                elif [ "$km_t" != ffffffff81000000 ] || [ $((0x$km_c)) != $((0x1000000)) ]; then
                    km_moved=$((km_moved + 1))
                fi
                ;;
        esac
    done
    [ "$km_moved" -gt 0 ] || km_why="$km_why all $# kernels at the link address"
    if [ -z "$km_why" ]; then pass kaslr/moved; else fail kaslr/moved "${km_why# }"; fi
}

lab_expectations() {
    # What the guest kernel keeps for itself out of --mem.  Debian's 6.1
    # kernel reserves ~46M for its image (code+data+bss) plus its struct page
    # array (1/64 of RAM); measured under QEMU q35: MemTotal = 256M - 50.2M,
    # 384M - 52.8M, 512M - 54.8M.  48M is too tight for this kernel.
    # shellcheck disable=SC2034  # read by check_boot in scripts/lab/run-tests
    MEM_SLACK=64M
    check_boot smp1 nproc=1 mem=256M cmdline=vmmtest=smp1
    check_boot rng cmdline="panic=-1 vmmrng=1 vmmtest=append"
    check_guest rng entropy rng_current=virtio_rng.0 rng_bytes=4096 rng_values=256 error=
    check_boot no-rng cmdline=vmmrng=1
    check_guest no-rng entropy rng_current=none rng_bytes=0 error=
    check_boot smp2 nproc=2 mem=512M cmdline=vmmtest=smp2
    check_boot vmlinux nproc=2 mem=384M cmdline=vmmtest=vmlinux
    # decompressed=, cached=, stored=, random=, unwritable=, cache_files=
    check_boot kaslr-a mem=256M cmdline=vmmkaslr=1
    lab_kernel_facts kaslr-a 1 0 1 1 0 1
    check_boot kaslr-b mem=256M cmdline=vmmkaslr=1
    lab_kernel_facts kaslr-b 0 1 0 1 0 1
    check_boot nokaslr mem=256M cmdline=nokaslr
    lab_kernel_facts nokaslr 0 1 0 0 0 1
    check_guest nokaslr link text=ffffffff81000000 code=01000000
    check_boot kernel-no-cache mem=256M cmdline=vmmkaslr=1
    lab_kernel_facts kernel-no-cache 1 0 0 1 0 0
    lab_kaslr_moved kaslr-a kaslr-b kernel-no-cache
    check_boot hugepages nproc=1 mem=256M cmdline=vmmtest=hugepages
    check_note hugepages hugepages_used_max -ge 1
    check_usage_error bad-mem-zero --mem
    check_usage_error bad-kernel-missing /nonexistent
    check_usage_error bad-kernel-format /init
    check_usage_error bad-initrd-too-big initrd

    # (the guest's own facts: see scripts/lab/guest-init)
    for e in io_uring aio sync; do
        q=1
        [ "$e" != io_uring ] || q=2
        check_boot "blk-$e" nproc="$q" cmdline=vmmblk=fs:vda,raw:vdb
        check_guest "blk-$e" disks disks=2 vda_sectors=524288 vdb_sectors=262144 \
            vda_ro=0 vdb_ro=0 vda_serial="lab-$e" vdb_serial= vda_queues="$q" error=
        check_guest "blk-$e" write data_bytes=$((BLK_MIB * 1048576)) error=
        check_same "blk-$e/image" "g:blk-$e:data_sha256" "l1:blk-$e:image_sha256"
        check_note "blk-$e" image_bytes = 268435456,134217728
    done
    check_boot blk-intx nproc=2 cmdline=pci=nomsi
    check_guest blk-intx intx irq=intx disks=1 vda_queues=2 data_bytes=16777216 reload=ok error=
    check_same blk-intx/image g:blk-intx:data_sha256 l1:blk-intx:image_sha256 \
        g:blk-intx:vda_reload_sha256
    check_note blk-sigkill waited = found
    check_exit blk-sigkill 137
    check_guest blk-sigkill write data_bytes=$((BLK_MIB * 1048576)) error=
    check_same blk-sigkill/image g:blk-sigkill:data_sha256 l1:blk-sigkill:image_sha256
    check_error blk-lock 1 locked
    check_boot blk-verify nproc=1 cmdline=vmmblk=fsread:vda
    check_guest blk-verify disks disks=5 vde_serial=lab-ro vda_ro=0 vde_ro=1 error=
    check_same blk-verify/io_uring g:blk-io_uring:data_sha256 g:blk-verify:vda_sha256
    check_same blk-verify/aio g:blk-aio:data_sha256 g:blk-verify:vdb_sha256
    check_same blk-verify/sync g:blk-sync:data_sha256 g:blk-verify:vdc_sha256
    check_same blk-verify/sigkill g:blk-sigkill:data_sha256 g:blk-verify:vdd_sha256
    check_guest blk-verify readonly vde_ro=1 vde_write=failed
    check_guest blk-verify reload irq=msix reload=ok
    check_same blk-verify/reload g:blk-sigkill:data_sha256 g:blk-verify:vdd_reload_sha256
    check_note blk-verify ro_mount = yes
    check_same blk-verify/readonly-unchanged l1:blk-verify:ro_sha256_before \
        g:blk-verify:vde_sha256_before g:blk-verify:vde_sha256 l1:blk-verify:ro_sha256_after
    check_usage_error blk-bad-key bogus
    check_usage_error blk-bad-missing missing.img
    check_usage_error blk-bad-dir adir
    check_usage_error blk-bad-empty empty.img
    check_usage_error blk-bad-unaligned odd.img
    check_usage_error blk-bad-readonly maybe
    check_usage_error blk-bad-engine warp

    # (the guest's own facts: VMMNET lines, see scripts/lab/guest-init)
    for n in net-tcp net-mq; do
        q=1
        [ "$n" != net-mq ] || q=2
        check_exit "$n" 0
        check_boot "$n" nproc="$q" cmdline=vmmnet=
        check_net "$n" link ping=ok queues="$q" irq=msix down_rc=0 fetched=yes done=1 error=
        check_net_features "$n"
        check_note "$n" up_rc = 0
        check_same "$n/down" l1:net-tcp:down_sha256 "n:$n:down_sha256"
        check_same "$n/up" "n:$n:up_sha256" "l1:$n:up_sha256"
    done
    check_net net-tcp mac mac=52:54:00:12:34:56
    check_exit user-net 0
    check_net user-net link lease=10.0.90.1/24 router=10.0.90.254 down_rc=0 fetched=yes done=1 error=
    check_note user-net up_rc = 0
    check_same user-net/down l1:user-net:down_sha256 n:user-net:down_sha256
    check_same user-net/up n:user-net:up_sha256 l1:user-net:up_sha256
    check_boot share nproc=1 cmdline=vmmtest=share
    check_guest share share fs_done=1 fs_ro_write=failed error=
    check_same share/guest-reads l1:share:host_sha256 g:share:fs_read_sha256 g:share:fs_ro_read_sha256
    check_same share/host-reads g:share:fs_write_sha256 l1:share:guest_file_sha256
    check_note share ro_new_file = no
    check_boot share-user nproc=1 cmdline=vmmtest=share-user
    check_guest share-user share fs_done=1 error=
    check_same share-user/guest-reads l1:share:host_sha256 g:share-user:fs_read_sha256
    check_same share-user/host-reads g:share-user:fs_write_sha256 l1:share-user:guest_file_sha256
    check_note share-user owner -eq 1000
    check_note share-user run_dir_left -eq 0
    check_guest share-user vsock vsock_done=1
    check_same share-user/vsock-host-to-guest l1:share:host_sha256 g:share-user:vsock_h_down_sha256 \
        g:share-user:vsock_g_down_sha256
    check_same share-user/vsock-guest-to-host g:share-user:vsock_up_sha256 \
        l1:share-user:vsock_h_up_sha256 l1:share-user:vsock_g_up_sha256
    check_usage_error share-bad-missing "does not exist"
    check_usage_error share-bad-file "not a directory"
    check_usage_error fs-bad-socket "no such file"
    check_exit rootfs 0
    check_note rootfs target = active
    check_note rootfs guest_root = /dev/vda
    check_same rootfs/share l1:rootfs:share_sha256 l1:rootfs:guest_share_sha256
    check_exit vsock 0
    check_guest vsock vsock vsock_done=1 error=
    check_same vsock/host-to-guest l1:vsock:data_sha256 g:vsock:vsock_h_down_sha256
    check_same vsock/guest-to-host g:vsock:vsock_up_sha256 l1:vsock:h_up_sha256
    check_same vsock/guest-connects-down l1:vsock:data_sha256 g:vsock:vsock_g_down_sha256
    check_same vsock/guest-connects-up g:vsock:vsock_up_sha256 l1:vsock:g_up_sha256
    check_note vsock socket_left = no
    check_usage_error vsock-bad-cid cid=
    check_usage_error vsock-bad-dir socket=
    check_note net-mq tap_created = yes
    check_error net-busy 1 "in use"
    check_usage_error net-bad-mac mac=
    check_usage_error net-bad-tap "not a tap"

    # confinement and faults
    check_error sc-kill 159 "forbidden system call getppid"
    check_boot sc-off nproc=1 cmdline=vmmtest=sc-off
    check_boot nonroot nproc=1 cmdline=vmmtest=nonroot
    check_guest nonroot write disks=1 data_bytes=8388608 error=
    check_same nonroot/image g:nonroot:data_sha256 l1:nonroot:image_sha256
    check_exit jail 0
    check_guest jail write disks=1 data_bytes=8388608 error=
    check_net jail tcp down_rc=0 fetched=yes done=1 error=
    check_same jail/down l1:jail:down_sha256 n:jail:down_sha256
    check_same jail/up l1:jail:up_sha256 n:jail:up_sha256
    check_note jail uid = 65534
    check_note jail gid = 65534
    check_note jail caps_set = 0
    check_note jail no_new_privs = 1
    check_note jail seccomp = 2
    check_note jail own_namespaces = 4
    check_note jail snapshot_files = 2
    check_note jail snapshot_by_nobody = 1
    check_exit term-stream 143
    check_exit kill-stream 137
    for n in term-stream kill-stream; do
        check_guest "$n" stream error=
        i=1
        while [ "$i" -le 4 ]; do
            check_same "$n/chunk$i" "g:$n:chunk${i}_sha256" "l1:$n:chunk${i}_sha256"
            i=$((i + 1))
        done
    done
    check_exit fs-kill 137
    check_boot fs-verify nproc=1 cmdline=vmmtest=fs-verify
    check_guest fs-verify files error=
    i=1
    while [ "$i" -le 6 ]; do
        check_same "fs-verify/file$i" "g:fs-kill:file${i}_sha256" "g:fs-verify:vfile${i}_sha256"
        i=$((i + 1))
    done
    check_note fs-verify e2fsck_rc = 0

    # snapshots (vmmcount=1 guests: "VMMCOUNT N T")
    check_note snap-run snapshot_ok = 1
    # the two consoles joined: every step +1 from 0, 30 lines after the restore
    check_note snap-restore first = 0
    check_note snap-restore gaps -eq 0
    check_note snap-restore lines -ge 61
    # each skew is read to the second (the guest's stamp, L1's date +%s):
    # 2 is the jitter of two readings; a clock restored wrong is off by far more
    check_note snap-restore skew_drift_s -le 2
    check_note snap-smp snapshot_ok = 1
    check_note snap-smp-restore gaps -eq 0
    check_note snap-smp-restore lines -ge 5
    check_note snap-smp-restore hugetlb -ge 1
    for g in 1 2 3; do
        check_note "snap-g$g" snapshot_ok = 1
        check_note "snap-g$g" gaps -eq 0
    done
    # four generations' consoles joined: from 0, every step +1
    check_note snap-g4 first = 0
    check_note snap-g4 gaps -eq 0
    check_note snap-g4 lines -ge 41
    check_note snap-blk snapshot_ok = 1
    check_guest snap-blk-restore files fsynced=32 error=
    check_boot snap-blk-verify nproc=1 cmdline=vmmtest=snap-blk-verify
    check_guest snap-blk-verify files verified=32 error=
    i=1
    while [ "$i" -le 32 ]; do
        check_same "snap-blk-verify/file$i" "l1:snap-blk-verify:file${i}_sha256" \
            "g:snap-blk-verify:vfile${i}_sha256"
        i=$((i + 1))
    done
    check_note snap-blk-verify e2fsck_rc = 0
    check_note snap-net snapshot_ok = 1
    check_note snap-net-restore l1_ping = ok
    check_net snap-net-restore tcp down_rc=0 fetched=yes done=1 error=
    check_same snap-net-restore/down l1:snap-net-restore:down_sha256 n:snap-net-restore:down_sha256
    check_same snap-net-restore/up l1:snap-net-restore:up_sha256 n:snap-net-restore:up_sha256
    check_exit snap-ci 0
    check_note snap-ci state_file = yes
    check_exit snap-ci-exit3 3
    check_exit snap-ci-true 0
    check_exit snap-ci-false 1
    check_note snap-paused snapshot_ok = 1
    check_note snap-paused sections = 9
    check_note snap-paused sections_same = yes
    check_note snap-paused memory_diff_span -le 12

    # scripted runs
    check_exit exit7 7
    check_result_json exit7 7
    check_exit timeout 124
    # not before the 10 s, and by itself (well before lab_run's 60 s kill);
    # how much after 10 s is the machine's speed, not a fact to assert
    check_timing timeout 10 50
    check_stderr timeout "did not finish within 10 s"
    check_exit expect 0
    check_exit fail 1
    check_error fail 1 "Kernel panic"
    check_exit api 0
    check_prefix api status1 '{"ok":true,"state":"running",'
    check_note api pause = '{"ok":true,"state":"paused"}'
    check_prefix api status2 '{"ok":true,"state":"paused",'
    check_note api resume = '{"ok":true,"state":"running"}'
    check_note api stop = '{"ok":true,"state":"stopping","grace_s":10}'
    check_note api bogus_rc = 1
    check_note api socket_left = no
    check_api_stats api
    check_gap api 2.5

    # VFIO passthrough
    check_exit vfio-snapshot 1
    check_stderr vfio-snapshot "cannot be saved"
    check_note vfio-snapshot dir_left = no
    check_usage_error vfio-missing "no PCI device 0000:00:1e.0"
    check_usage_error vfio-unbound "has no driver"
    for n in vfio-e1000e vfio-again vfio-e1000; do
        irq=msix
        [ "$n" != vfio-e1000 ] || irq=intx
        check_boot "$n" nproc=1 cmdline=vmmvfio=
        check_vfio "$n" dhcp carrier=1 udhcpc_rc=0 lease=10.0.2.15 ping=ok irq="$irq" done=1 error=
        check_result_json "$n" 0
    done
    lab_migrate_expectations
}

lab_tiny_expectations() {
    # one check per cmocka case
    check_cmocka tiny-tests
    check_cmocka tiny-tests-asan
}

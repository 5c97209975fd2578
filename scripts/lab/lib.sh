# shellcheck shell=bash
# scripts/lab/lib.sh - host-side helpers shared by run-tests and bench-boot.
#
# The lab is three levels deep:
#   L0  this host (its /dev/kvm cannot run stock kernels)
#   L1  Debian's kernel under qemu-system-x86_64 in TCG mode with an EPYC CPU
#       that has SVM + NPT, so kvm_amd loads there and gives a real KVM
#   L2  (the VMM process running inside L1) -> L3, the guest it boots
# Everything below builds initramfs trees for L1 and L3 and boots L1.
# Sourced, not executed; callers have `set -euo pipefail`.

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=$LAB_ROOT/build/lab
LAB_SCRIPTS=$LAB_ROOT/scripts/lab
LAB_SCENARIOS=${LAB_SCENARIOS:-$LAB_ROOT/tests/lab/scenarios.sh}
# Modules L1 needs for KVM, in no particular order: dependencies are
# resolved from each module's own modinfo (the .deb ships no modules.dep).
LAB_KVM_MODULES="irqbypass ccp kvm kvm_amd"
# Disk scenarios: the L3 guest needs the virtio-pci transport, virtio-blk
# and ext4 (which also serves ext2: CONFIG_EXT4_USE_FOR_EXT2=y; all three
# are modules in Debian's kernel); L1 needs a RAM disk (brd) with ext2 on it
# for the disk images, because its tmpfs (6.1) has no O_DIRECT and
# cache=none needs it.  ext4 in 6.1 wants a crc32c driver at every mount,
# even of ext2 ("Cannot load crc32c driver"); modinfo names it only as a
# softdep, so it is listed here.
# shellcheck disable=SC2034  # used by the scripts that source this file
LAB_BLK_GUEST_MODULES="virtio_pci virtio_blk virtio_net virtio_rng vmw_vsock_virtio_transport virtiofs ext4 crc32c_generic"
# shellcheck disable=SC2034
LAB_BLK_L1_MODULES="brd ext4 crc32c_generic tun dummy virtio_pci virtio_blk"
LAB_L1_TIMEOUT=${LAB_L1_TIMEOUT:-900}
# A disk image L1 sees as /dev/vda (virtio-blk; writes go to a throw-away
# overlay, snapshot=on): the Debian disk of `make rootfs` for run-tests.
LAB_L1_DRIVE=${LAB_L1_DRIVE:-}
# L1's RAM: its initramfs (about 130 MiB, kept in RAM), the RAM disk for
# images, and two 512M guests at once in the migration scenarios. With
# 2048 the mig-fail guest triple-faulted during pre-copy in 3 of 4 lab
# runs of this tree (never before the initramfs grew); with 3072 it passed.
LAB_L1_MEM=${LAB_L1_MEM:-3072}
# TCG threading of L1: multi (one host thread per vCPU) or single
LAB_L1_TCG_THREAD=${LAB_L1_TCG_THREAD:-multi}
# VFIO passthrough (opt-in: LAB_L1_VFIO=1).  L1 then gets an emulated
# intel-iommu with interrupt remapping (intremap=on: QEMU's TCG supports it,
# so vfio_iommu_type1 needs no allow_unsafe_interrupts) and two NICs for L2
# to pass to L3, each on its own QEMU user network (restrict=on: nothing
# leaves, QEMU's DHCP server still answers):
#   LAB_VFIO_E1000E  e1000e (82574L, MSI-X)   at 00:04.0
#   LAB_VFIO_E1000   e1000  (82540EM, INTx)   at 00:05.0
# (scripts/lab/l1-lib.sh has the same addresses for the L1 side.)  No ROM
# BARs: L1's SeaBIOS would run iPXE for each, and so would L3's.
# lab_make_l1_root adds LAB_VFIO_L1_MODULES; L3 guests that drive the NICs
# need LAB_VFIO_GUEST_MODULES in their initramfs (both have no dependencies).
LAB_L1_VFIO=${LAB_L1_VFIO:-0}
# shellcheck disable=SC2034
LAB_VFIO_E1000E=0000:00:04.0
# shellcheck disable=SC2034
LAB_VFIO_E1000=0000:00:05.0
# vfio_pci pulls in vfio_pci_core, vfio, vfio_virqfd (a module of its own up
# to 6.1) and irqbypass through modinfo; vfio_iommu_type1 is only a softdep
# of vfio, so it is named.
LAB_VFIO_L1_MODULES="vfio_iommu_type1 vfio_pci"
# shellcheck disable=SC2034
LAB_VFIO_GUEST_MODULES="e1000e e1000"

lab_log() { printf '%s: %s\n' "${LAB_PROG:-lab}" "$*" >&2; }
lab_die() { printf '%s: error: %s\n' "${LAB_PROG:-lab}" "$*" >&2; exit 1; }
# Exit 77 ("cannot run here") with one reason line on stdout.
lab_cannot_run() { printf '%s: cannot run: %s\n' "${LAB_PROG:-lab}" "$*"; exit 77; }

# A command that fails outside any check stops the caller (set -e) with no
# word of its own; say which one, once (not again from each subshell).
set -E
# shellcheck disable=SC2154  # _lab_rc is set inside the trap string
trap '_lab_rc=$?; [ "$BASHPID" != "$$" ] || lab_log "stopped: status $_lab_rc at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR

# Host tools the lab needs; missing ones mean "cannot run", not "failed".
lab_require_host_tools() {
    local t
    for t in qemu-system-x86_64 cpio ldd strings apt-get dpkg-deb timeout; do
        command -v "$t" >/dev/null 2>&1 || lab_cannot_run "no $t on this host"
    done
}

# Never run two L1 boots at once (2 cores; TCG is CPU bound).  A lock file
# under build/lab makes a second caller wait instead of halving both.
lab_lock() {
    exec 9>"$LAB/.l1.lock"
    if ! flock -n 9; then
        lab_log "another lab boot is running; waiting for it"
        flock 9
    fi
}

# Put a static busybox at ROOT/bin/busybox with one symlink per applet, so
# scripts can call `mount`, `insmod`, ... directly.
lab_add_busybox() {
    local root=$1 a
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp "$LAB/busybox" "$root/bin/busybox"
    for a in $("$LAB/busybox" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
    done
}

# Copy an ELF program to ROOT/DEST plus every shared library ldd lists (and
# the dynamic loader) at the same absolute paths, so it runs unchanged in an
# initramfs without ld.so.cache (Debian's loader searches the multiarch dirs).
# Libraries the program opens itself (dlopen) are not in ldd's list: their
# sonames are strings in the program (vmm opens liblzma, libzstd and nettle
# while it unpacks a kernel), so each such string that ldconfig knows is
# copied too, with what ldd lists for it.
lab_add_elf() {
    local root=$1 src=$2 dest=$3 lib so dl ldc cache
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
    dl="" ldc=$(command -v ldconfig || echo /sbin/ldconfig) # /sbin: not in a user's PATH
    # the cache is read whole (awk must not stop early: under pipefail the
    # writer's SIGPIPE would fail the caller)
    cache=$("$ldc" -p)
    for so in $(strings -a "$src" | grep -xE 'lib[A-Za-z0-9_+-]+\.so\.[0-9]+' | sort -u); do
        lib=$(awk -v s="$so" '$1 == s && /x86-64/ && !found { print $NF; found = 1 }' <<<"$cache")
        if [ -n "$lib" ]; then dl="$dl $lib"; fi
    done
    # "not a dynamic executable" (static build) makes ldd fail: nothing to add
    # shellcheck disable=SC2086  # word splitting intended: a list of paths
    for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' || true) \
        $dl $(for so in $dl; do ldd "$so" 2>/dev/null | grep -o '/[^ ]*' || true; done); do
        [ -e "$root/$lib" ] && continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
}

# lab_fetch_deb PKG: path of a .deb of PKG in build/lab/cache, fetched with
# `apt-get download` (after `apt-get update` if that fails) unless there.
lab_fetch_deb() {
    local pkg=$1 cache=$LAB/cache deb
    mkdir -p "$cache"
    deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
    if [ -z "$deb" ]; then
        lab_log "downloading $pkg"
        if ! (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1); then
            apt-get update >/dev/null 2>&1 || true
            (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || return 1
        fi
        deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
    fi
    [ -n "$deb" ] && printf '%s\n' "$deb"
}

# Resolve a module name (dashes and underscores are the same) to its file,
# through the "name path" index built by lab_add_modules.
_lab_mod_file() {
    awk -v w="${1//-/_}" '$1 == w { print $2; found = 1; exit } END { exit !found }' \
        "$_LAB_MOD_INDEX"
}

# Print a module's decompressed bytes (Debian 12 ships plain .ko; later
# releases compress them; L1's busybox insmod wants plain ones).
_lab_mod_cat() {
    case $1 in
        *.ko) cat "$1" ;;
        *.ko.xz) xz -dc "$1" ;;
        *.ko.zst) zstd -dcq "$1" ;;
        *.ko.gz) gzip -dc "$1" ;;
        *) lab_die "unknown module format: $1" ;;
    esac
}

# Depth-first: dependencies first, each module once.  Dependencies come
# from the "depends=" entry of the module's .modinfo section.
_lab_mod_visit() {
    local name=${1//-/_} f deps d
    case " $_LAB_MOD_DONE " in *" $name "*) return 0 ;; esac
    f=$(_lab_mod_file "$name") || lab_die "module $name not found in $LAB/modules"
    deps=$(_lab_mod_cat "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1)
    for d in ${deps//,/ }; do _lab_mod_visit "$d"; done
    _LAB_MOD_DONE="$_LAB_MOD_DONE $name"
    _lab_mod_cat "$f" >"$_LAB_MOD_OUT/$name.ko"
    printf '%s\n' "$name" >>"$_LAB_MOD_OUT/order"
}

# Copy MODULES... (with their dependencies) to ROOT/lib/modules/lab as plain
# .ko files, plus an "order" file listing them in insmod order.  Call it
# once per tree: it starts the order file afresh.
lab_add_modules() {
    local root=$1 m; shift
    _LAB_MOD_OUT=$root/lib/modules/lab
    mkdir -p "$_LAB_MOD_OUT"
    : >"$_LAB_MOD_OUT/order"
    _LAB_MOD_DONE=
    _LAB_MOD_INDEX=$LAB/modules.index
    find -L "$LAB/modules/kernel" -name '*.ko*' |
        awk -F/ '{ n = $NF; sub(/\.ko.*$/, "", n); gsub(/-/, "_", n); print n, $0 }' \
        >"$_LAB_MOD_INDEX"
    for m in "$@"; do _lab_mod_visit "$m"; done
}

# lab_module_args ROOT NAME ARGS: parameters for insmod of module NAME in
# ROOT's L1 tree (lab_l1_setup reads ROOT/lib/modules/lab/NAME.args).
lab_module_args() {
    printf '%s\n' "$3" >"$1/lib/modules/lab/${2//-/_}.args"
}

# Write the L3 guest initramfs: busybox plus an /init that prints the one
# VMMGUEST result line and reboots.  MARKER goes to /initrd-marker so the host
# can tell that this very initrd was loaded.  MODULES (optional) go to
# /lib/modules/lab for the init's disk modes (see scripts/lab/guest-init).
lab_make_guest_initramfs() {
    local out=$1 marker=$2 dir
    shift 2
    dir=$(mktemp -d "$LAB/guest-root.XXXXXX")
    lab_add_busybox "$dir"
    [ $# -eq 0 ] || lab_add_modules "$dir" "$@"
    mkdir -p "$dir/proc" "$dir/sys" "$dir/dev"
    cp "$LAB_SCRIPTS/guest-init" "$dir/init"
    chmod 755 "$dir/init"
    # the migration scenarios' page writer and ticker, static
    mkdir -p "$dir/bin"
    gcc -O2 -static -o "$dir/bin/vmmpages" "$LAB_SCRIPTS/vmmpages.c"
    gcc -O2 -static -o "$dir/bin/vmmvsock" "$LAB_SCRIPTS/vmmvsock.c"
    printf '%s\n' "$marker" >"$dir/initrd-marker"
    lab_cpio "$dir" "$out"
    rm -rf "$dir"
}

# Common L1 tree: busybox, KVM modules (and EXTRA_MODULES, if given; with
# LAB_L1_VFIO=1 also the VFIO ones), L1 helper library, stock kernel and the
# guest initramfs.  Callers add their own /init and programs.
lab_make_l1_root() {
    local dir=$1 guest_initrd=$2 vfio=
    shift 2
    [ "$LAB_L1_VFIO" != 1 ] || vfio=$LAB_VFIO_L1_MODULES
    lab_add_busybox "$dir"
    mkdir -p "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/lab"
    # shellcheck disable=SC2086  # word splitting intended: a list of names
    lab_add_modules "$dir" $LAB_KVM_MODULES $vfio "$@"
    cp "$LAB_SCRIPTS/l1-lib.sh" "$dir/lab/l1-lib.sh"
    cp "$LAB/bzImage" "$dir/lab/bzImage"
    cp "$guest_initrd" "$dir/lab/guest.cpio"
}

# Pack DIR as an uncompressed newc cpio: L1 runs under TCG where unpacking
# is a plain copy but decompressing ~100 MB would cost seconds.
lab_cpio() {
    local dir=$1 out=$2
    (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out.tmp"
    mv "$out.tmp" "$out"
}

# Copy QEMU with its libraries and the firmware it needs to run x86 guests
# with -nodefaults into ROOT (binary at /usr/bin, firmware at /lab/qemu-fw,
# to be passed with -L).  Used by bench-boot and by the stand-in VMM.
lab_add_qemu() {
    local root=$1 fw f src d
    lab_add_elf "$root" "$(command -v qemu-system-x86_64)" /usr/bin/qemu-system-x86_64
    fw=$root/lab/qemu-fw
    mkdir -p "$fw"
    # qemu -L help lists the search path of this build (share/qemu,
    # share/seabios, lib/ipxe/qemu); take each file from the first dir
    # that has it.
    for f in bios-microvm.bin qboot.rom bios-256k.bin bios.bin linuxboot_dma.bin \
             linuxboot.bin kvmvapic.bin pvh.bin multiboot_dma.bin; do
        src=
        for d in $(qemu-system-x86_64 -L help 2>/dev/null); do
            [ -e "$d/$f" ] && { src=$d/$f; break; }
        done
        [ -n "$src" ] && cp -L "$src" "$fw/$f"
    done
    [ -e "$fw/bios-256k.bin" ] || lab_log "warning: no bios-256k.bin found for QEMU in L1"
}

# lab_boot_l1 INITRD LOG [ATTEMPTS]: boot L1 with INITRD, log to LOG, hard
# wall-clock limit, up to ATTEMPTS (2) boots.  -no-reboot turns
# both poweroff and reboot (and panic=-1) into a QEMU exit.  Returns QEMU's
# (or timeout's, 124) exit status.
#
# Now and then (about one L1 boot in a dozen here) TCG's nested SVM wedges
# L1 for good: both its vCPUs spin and even its own timers stop, so nothing
# inside can recover.  L1's console is never silent for long in a healthy
# run, so a silence of LAB_L1_STALL seconds, or L1's watchdog reporting a
# soft lockup, means a wedge: kill it and boot once more, saying so (the
# wedged attempt's log is kept as LOG.wedgedN).
# Rarer, the same emulation takes L1 down: its own kernel panics (an oops
# from the Q35 machine that L1 is; a guest of the VMM under test has no such
# hardware name) or it resets, and QEMU exits before L1's init said "done".
# That is treated as a wedge too, and says so.
LAB_L1_STALL=${LAB_L1_STALL:-90}
lab_boot_l1() {
    local initrd=$1 log=$2 attempts=${3:-2} rc attempt why
    for attempt in $(seq 1 "$attempts"); do
        rc=0
        _lab_boot_l1_once "$initrd" "$log" || rc=$?
        case $rc in
            125) why="soft lockup, or console silent for ${LAB_L1_STALL}s" ;;
            126)
                if grep -aq 'Hardware name: QEMU Standard PC' "$log"; then
                    # the BUG or panic line just before L1's own oops header (its
                    # guests' consoles, panics included, pass through the log too)
                    why="L1's own kernel crashed: $(tr -d '\r' <"$log" | awk '
                        /BUG: |Kernel panic - not syncing: / { sub(/.*\] /, ""); last = $0 }
                        /Hardware name: QEMU Standard PC/ { why = last }
                        END { print why }')"
                else
                    why="L1 reset or powered off before its init was done"
                fi ;;
            *) return "$rc" ;;
        esac
        cp "$log" "$log.wedged$attempt"
        lab_log "L1 wedged ($why; attempt $attempt of $attempts; its log: ${log#"$LAB_ROOT"/}.wedged$attempt)"
    done
    return 124
}

_lab_boot_l1_once() {
    local initrd=$1 log=$2 pid size last_size=-1 quiet_s=0 vfio=() drive=() what=TCG
    # nokaslr: a wedge's RIPs (scripts/lab/l1-where) are System.map's addresses.
    # (At some wedges both of L1's vCPUs sat halted in the idle loop, as if a
    # one-shot timer interrupt had been lost; a periodic LAPIC tick, tried
    # against that, wedged bench-boot twice in two boots in other ways.)
    local append="console=ttyS0 panic=-1 quiet mitigations=off nokaslr"
    if [ "$LAB_L1_VFIO" = 1 ]; then
        # intel-iommu first, ahead of the devices behind it
        # shellcheck disable=SC2054  # commas inside QEMU arguments
        vfio=(-device intel-iommu,intremap=on
              -netdev user,id=vfio0,restrict=on
              -device "e1000e,netdev=vfio0,addr=${LAB_VFIO_E1000E##*:00:},romfile="
              -netdev user,id=vfio1,restrict=on
              -device "e1000,netdev=vfio1,addr=${LAB_VFIO_E1000##*:00:},romfile=")
        append+=" intel_iommu=on iommu=pt"
        what="TCG, intel-iommu + NICs $LAB_VFIO_E1000E $LAB_VFIO_E1000 for VFIO"
    fi
    if [ -n "$LAB_L1_DRIVE" ]; then
        drive=(-drive "file=$LAB_L1_DRIVE,if=virtio,format=raw,snapshot=on")
        what+=", ${LAB_L1_DRIVE#"$LAB_ROOT"/} as vda"
    fi
    lab_log "booting L1 ($what, log: ${log#"$LAB_ROOT"/}, limit ${LAB_L1_TIMEOUT}s)"
    timeout -k 10 "$LAB_L1_TIMEOUT" qemu-system-x86_64 \
        -accel "tcg,thread=$LAB_L1_TCG_THREAD" -M q35 -cpu EPYC,+svm,+npt -smp 2 -m "$LAB_L1_MEM" \
        -nographic -no-reboot "${vfio[@]}" "${drive[@]}" \
        -kernel "$LAB/bzImage" -initrd "$initrd" \
        -append "$append" -monitor "unix:$log.mon,server,nowait" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        size=$(stat -c %s "$log" 2>/dev/null || echo 0)
        if [ "$size" = "$last_size" ]; then
            quiet_s=$((quiet_s + 5))
        else
            quiet_s=0
            last_size=$size
        fi
        # The other face of the same wedge: L1 still prints, but only its
        # watchdog, about a CPU stuck in the nested guest.
        if [ "$quiet_s" -ge "$LAB_L1_STALL" ] || grep -aq 'soft lockup - CPU' "$log"; then
            # where its vCPUs are, into the log the wedge keeps
            "$LAB_SCRIPTS/l1-where" "$log.mon" "$LAB/pkg/kernel/boot/System.map-$(cat "$LAB/kernel-version")" |
                sed 's/^/VMMLAB l1 wedged: /' | tee -a "$log" | sed 's/^VMMLAB //' | while read -r l; do lab_log "$l"; done
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            rm -f "$log.mon"
            return 125
        fi
    done
    rm -f "$log.mon"
    wait "$pid" || return $?
    # QEMU ended by itself (L1 powered off or reset: -no-reboot, panic=-1)
    # before L1's init said it was done, and not over an error of its own:
    # L1 itself died, which nothing a VMM does in it is meant to cause.
    if ! grep -aq '^VMMLAB done' "$log" && ! grep -aq 'VMMLAB l1 error:' "$log"; then
        return 126
    fi
}

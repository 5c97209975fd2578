# shellcheck shell=sh
# scripts/lab/l1-lib.sh - helpers for the /init scripts that run inside L1
# (busybox ash, no bash-isms).  Copied into the L1 initramfs as
# /lab/l1-lib.sh.
#
# Everything L1 reports goes to its console (= QEMU's stdout = the host's log)
# as lines starting with "VMMLAB ", which the host parses:
#   VMMLAB l1 ready ...          KVM is usable; scenarios follow
#   VMMLAB l1 error: WHY         L1 cannot run scenarios
#   VMMLAB NAME begin            a scenario starts; guest console follows
#   VMMLAB NAME rc=N             its exit status
#   VMMLAB NAME time_s=S         its wall time inside L1
#   VMMLAB NAME stderr: LINE     each line it wrote to stderr
#   VMMLAB NAME skip: WHY        it was not run
#   VMMLAB NAME KEY=VALUE        extra facts for the host checks
#   VMMLAB group G begin|end     a group of scenarios (lab_group)
#   VMMLAB done                  L1 is about to power off

# Mount the basics, attach the console, load KVM.  Returns non-zero (after
# printing "VMMLAB l1 error: ...") when /dev/kvm is not there.
lab_l1_setup() {
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    # no /dev/console in the initramfs: attach stdio now that devtmpfs is up
    exec </dev/console >/dev/console 2>&1
    mkdir -p /tmp /dev/hugepages
    mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
    # Modules in dependency order (computed on the host from modinfo).
    # (NAME.args, when there, holds parameters: see lab_module_args)
    while read -r _m; do
        _args=$(cat "/lib/modules/lab/$_m.args" 2>/dev/null)
        # shellcheck disable=SC2086  # word splitting intended: parameters
        if ! _out=$(insmod "/lib/modules/lab/$_m.ko" $_args 2>&1); then
            echo "VMMLAB l1 insmod $_m: $_out"
        fi
    done </lib/modules/lab/order
    if [ ! -c /dev/kvm ]; then
        echo "VMMLAB l1 error: no /dev/kvm after loading $(tr '\n' ' ' </lib/modules/lab/order)"
        return 1
    fi
    _npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo '?')
    _nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null || echo '?')
    echo "VMMLAB l1 ready kernel=$(uname -r) cpus=$(nproc) npt=$_npt nested=$_nested uptime_s=$(lab_now)"
}

# Seconds since L1 boot with 10 ms resolution, from a shell builtin read.
lab_now() {
    read -r _up _ </proc/uptime
    echo "$_up"
}

# Microseconds since the epoch (busybox date has no %N; adjtimex prints
# tv_sec/tv_usec).  Falls back to /proc/uptime (10 ms resolution).
lab_now_us() {
    adjtimex 2>/dev/null | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2}
        END { if (s == "") exit 1; printf "%d%06d\n", s, u }' ||
        awk '{ printf "%d\n", $1 * 1000000 }' /proc/uptime
}

# lab_run NAME SECS CMD [ARGS...]: run CMD with a time limit, its stdout (the
# guest console) straight to L1's console, its stderr captured and replayed
# with the NAME prefix.  stdin is /dev/null so nothing reads L1's console.
# TCG's nested SVM now and then makes a guest triple-fault in its kernel's
# boot, in a different scenario each run: a run whose guest did so before
# its kernel started init runs once more (nothing of the guest's own ran,
# so nothing it does has happened yet).  The first attempt's record is
# then "NAME~1", with "VMMLAB NAME retried: WHY" after it, and the host
# reads the second.
lab_run() {
    _n=$1 _t=$2
    shift 2
    _try=1
    while :; do
        echo "VMMLAB $_n begin"
        _s=$(lab_now)
        { timeout -k 5 "$_t" "$@" </dev/null 2>"/tmp/$_n.err"; echo $? >"/tmp/$_n.rc"; } |
            tee "/tmp/$_n.out"
        _rc=$(cat "/tmp/$_n.rc")
        _e=$(lab_now)
        _r=$_n
        if [ "$_try" = 1 ] && [ "$_rc" = 1 ] && grep -q 'guest triple fault' "/tmp/$_n.err" &&
            ! grep -q 'Run /.* as init process\|VMMGUEST\|login:' "/tmp/$_n.out"; then
            _r="$_n~1"
        fi
        # the guest's last output line may lack its newline: start a fresh line
        echo
        echo "VMMLAB $_r rc=$_rc"
        echo "VMMLAB $_r time_s=$(awk -v s="$_s" -v e="$_e" 'BEGIN { printf "%.2f", e - s }')"
        while IFS= read -r _l || [ -n "$_l" ]; do
            echo "VMMLAB $_r stderr: $_l"
        done <"/tmp/$_n.err"
        rm -f "/tmp/$_n.out" "/tmp/$_n.rc"
        [ "$_r" != "$_n" ] || break
        echo "VMMLAB $_n retried: the guest triple-faulted before its init ran, after $(awk -v s="$_s" -v e="$_e" 'BEGIN { printf "%.1f", e - s }') s"
        _try=2
    done
    return "$_rc"
}

# Background runs, for scenarios that must act while the VMM runs (kill it
# at a given moment, or hold a disk open while another VMM tries it):
#   lab_bg_start NAME CMD [ARGS...]   start CMD, console (stdout) and stderr
#                                     to files
#   lab_bg_wait NAME PATTERN SECS     wait until a console line has PATTERN;
#                                     true if it came
#   lab_bg_stop NAME                  SIGKILL it and all its descendants,
#                                     then report it the way lab_run does
# lab_bg_stop prints the whole record at once (begin, console, rc, time_s,
# stderr, and "waited=found|exited|timeout" from lab_bg_wait), so that
# scenarios run meanwhile do not land inside this one's section.  rc is 137
# when the kill ended it, the VMM's own status when it had exited before.
lab_bg_start() {
    _n=$1
    shift
    lab_now >"/tmp/$_n.t0"
    echo none >"/tmp/$_n.waited"
    "$@" </dev/null >"/tmp/$_n.out" 2>"/tmp/$_n.err" &
    echo $! >"/tmp/$_n.pid"
}

lab_bg_wait() {
    _n=$1 _p=$2 _t=$3
    _pid=$(cat "/tmp/$_n.pid")
    _end=$(awk -v n="$(lab_now)" -v t="$_t" 'BEGIN { print int(n + t) }')
    _beat=$(lab_now)
    _beat=${_beat%.*}
    while :; do
        if grep -q -- "$_p" "/tmp/$_n.out"; then _w=found; break; fi
        if ! _lab_alive "$_pid"; then _w=exited; break; fi
        _now=$(lab_now)
        if [ "${_now%.*}" -ge "$_end" ]; then _w=timeout; break; fi
        # L1's console silent for long means a wedge to the host: say we wait
        if [ $((${_now%.*} - _beat)) -ge 30 ]; then
            echo "VMMLAB $_n still waiting"
            _beat=${_now%.*}
        fi
        sleep 0.2
    done
    echo "$_w" >"/tmp/$_n.waited"
    [ "$_w" = found ]
}

lab_bg_stop() {
    _n=$1
    _pid=$(cat "/tmp/$_n.pid")
    # descendants first: once the parent dies they are re-parented to init
    # shellcheck disable=SC2046  # word splitting intended: a list of PIDs
    kill -9 "$_pid" $(_lab_descendants "$_pid") 2>/dev/null
    wait "$_pid"
    _rc=$?
    _e=$(lab_now)
    echo "VMMLAB $_n begin"
    cat "/tmp/$_n.out"
    echo
    echo "VMMLAB $_n rc=$_rc"
    echo "VMMLAB $_n time_s=$(awk -v s="$(cat "/tmp/$_n.t0")" -v e="$_e" 'BEGIN { printf "%.2f", e - s }')"
    echo "VMMLAB $_n waited=$(cat "/tmp/$_n.waited")"
    while IFS= read -r _l || [ -n "$_l" ]; do
        echo "VMMLAB $_n stderr: $_l"
    done <"/tmp/$_n.err"
    rm -f "/tmp/$_n.out" "/tmp/$_n.err" "/tmp/$_n.pid" "/tmp/$_n.t0" "/tmp/$_n.waited"
}

# True while PID runs (a zombie, dead but not yet waited for, does not).
_lab_alive() {
    [ -r "/proc/$1/stat" ] || return 1
    [ "$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# PIDs of all descendants of PID (from the ppid field of /proc/*/stat).
_lab_descendants() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
        { s = $0; sub(/^.*\) /, "", s); split(s, f, " "); parent[$1] = f[2] }
        END {
            want[root] = 1
            do {
                more = 0
                for (p in parent)
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; more = 1; print p }
            } while (more)
        }'
}

# lab_scratch_fs DIR: an ext2 file system on the RAM disk /dev/ram0 (brd,
# loaded with its size by lab_l1_setup), mounted at DIR, for disk images:
# unlike tmpfs it takes O_DIRECT (cache=none).  Prints why on failure.
lab_scratch_fs() {
    [ -b /dev/ram0 ] || { echo "no /dev/ram0 (brd module not loaded)"; return 1; }
    _o=$(mke2fs -F -m 0 /dev/ram0 2>&1 >/dev/null) || { echo "mke2fs /dev/ram0: $_o"; return 1; }
    mkdir -p "$1"
    _o=$(mount -t ext2 /dev/ram0 "$1" 2>&1) || { echo "mount /dev/ram0: $_o"; return 1; }
}

# VFIO passthrough (L1 booted with LAB_L1_VFIO=1, see scripts/lab/lib.sh for
# the same addresses): two NICs, each alone in its IOMMU group, no driver in
# L1 until one is bound.
# shellcheck disable=SC2034  # for the scenario files
LAB_VFIO_E1000E=0000:00:04.0    # e1000e 82574L, MSI-X
# shellcheck disable=SC2034
LAB_VFIO_E1000=0000:00:05.0     # e1000 82540EM, INTx only

# lab_vfio_group BDF: the device's IOMMU group number (fails without one).
lab_vfio_group() {
    _g=$(readlink "/sys/bus/pci/devices/$1/iommu_group" 2>/dev/null) || return 1
    echo "${_g##*/}"
}

# lab_vfio_bind BDF: hand the PCI device BDF (0000:00:04.0) to vfio-pci, so
# that /dev/vfio/GROUP appears for a VMM to open.  Unbinds it from its
# current driver first, if any; driver_override keeps other drivers off
# it.  Prints why on failure.
lab_vfio_bind() {
    _d=/sys/bus/pci/devices/$1
    [ -e "$_d" ] || { echo "no PCI device $1"; return 1; }
    _g=$(lab_vfio_group "$1") ||
        { echo "$1 has no IOMMU group (L1 without intel-iommu / intel_iommu=on?)"; return 1; }
    [ -e /sys/bus/pci/drivers/vfio-pci ] ||
        { echo "no vfio-pci driver (vfio modules not loaded?)"; return 1; }
    _cur=$(readlink "$_d/driver" 2>/dev/null)
    _cur=${_cur##*/}
    if [ "$_cur" != vfio-pci ]; then
        echo vfio-pci >"$_d/driver_override" || { echo "cannot set $1 driver_override"; return 1; }
        if [ -n "$_cur" ]; then
            echo "$1" >"$_d/driver/unbind" || { echo "cannot unbind $1 from $_cur"; return 1; }
        fi
        echo "$1" >/sys/bus/pci/drivers_probe 2>/dev/null
    fi
    _cur=$(readlink "$_d/driver" 2>/dev/null)
    [ "${_cur##*/}" = vfio-pci ] ||
        { echo "$1 not bound to vfio-pci after probing (driver: ${_cur##*/}; $(dmesg | grep -i vfio | tail -n 1))"; return 1; }
    # a group is usable only when each of its devices is with vfio-pci or
    # with no driver
    for _m in "/sys/kernel/iommu_groups/$_g/devices/"*; do
        _md=$(readlink "$_m/driver" 2>/dev/null)
        case ${_md##*/} in
            '' | vfio-pci | pcieport) ;;
            *) echo "group $_g also holds ${_m##*/} (driver ${_md##*/})"; return 1 ;;
        esac
    done
    _i=0
    while [ ! -c "/dev/vfio/$_g" ] && [ "$_i" -lt 20 ]; do sleep 0.1; _i=$((_i + 1)); done
    [ -c "/dev/vfio/$_g" ] || { echo "no /dev/vfio/$_g after binding $1 to vfio-pci"; return 1; }
}

# lab_vfio_unbind BDF: take the device away from vfio-pci again (no driver,
# no override); /dev/vfio/GROUP goes away.
lab_vfio_unbind() {
    _d=/sys/bus/pci/devices/$1
    [ -e "$_d" ] || { echo "no PCI device $1"; return 1; }
    echo >"$_d/driver_override"
    [ ! -e "$_d/driver" ] || echo "$1" >"$_d/driver/unbind" || { echo "cannot unbind $1"; return 1; }
}

# lab_sha256 FILE [MIB]: sha256 of FILE, or of its first MIB MiB.
lab_sha256() {
    if [ -n "${2:-}" ]; then
        dd if="$1" bs=1M count="$2" 2>/dev/null | sha256sum | cut -d ' ' -f 1
    else
        sha256sum "$1" | cut -d ' ' -f 1
    fi
}

# lab_skip NAME WHY...: record that a scenario was not run.
lab_skip() {
    _n=$1
    shift
    echo "VMMLAB $_n skip: $*"
}

# lab_note NAME KEY=VALUE: an extra fact for the host-side checks.
lab_note() {
    echo "VMMLAB $1 $2"
}

# Hugepage use while a scenario runs: a background sampler keeps the highest
# number of 2M pages in use or reserved (Total - Free + Rsvd) in a file.
lab_hugepages_watch_start() {
    echo 0 >/tmp/hp.max
    (
        _max=0
        while [ ! -e /tmp/hp.stop ]; do
            _u=$(awk '/^HugePages_Total:/ {t=$2} /^HugePages_Free:/ {f=$2}
                      /^HugePages_Rsvd:/ {r=$2} END {print t - f + r}' /proc/meminfo)
            if [ "$_u" -gt "$_max" ]; then _max=$_u; echo "$_max" >/tmp/hp.max; fi
            sleep 0.2
        done
    ) &
    _LAB_HP_PID=$!
}

# Stop the sampler and print the maximum it saw.
lab_hugepages_watch_stop() {
    touch /tmp/hp.stop
    wait "$_LAB_HP_PID" 2>/dev/null
    rm -f /tmp/hp.stop
    cat /tmp/hp.max
}

# lab_group NAME FUNC: run the scenario group FUNC between "VMMLAB group NAME
# begin" and "... end", unless an earlier L1 boot, cut short by a wedge,
# finished it: run-tests lists those in /lab/groups-done.
lab_group() {
    if grep -qx "$1" /lab/groups-done 2>/dev/null; then
        echo "VMMLAB group $1 done in an earlier boot"
        return 0
    fi
    echo "VMMLAB group $1 begin"
    "$2"
    echo "VMMLAB group $1 end"
}

# End L1: -no-reboot on the QEMU side turns either call into an exit.
lab_l1_finish() {
    echo "VMMLAB done"
    sync
    poweroff -f
    reboot -f
}

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
    while read -r _m; do
        if ! _out=$(insmod "/lib/modules/lab/$_m.ko" 2>&1); then
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
lab_run() {
    _n=$1 _t=$2
    shift 2
    echo "VMMLAB $_n begin"
    _s=$(lab_now)
    timeout -k 5 "$_t" "$@" </dev/null 2>"/tmp/$_n.err"
    _rc=$?
    _e=$(lab_now)
    # the guest's last output line may lack its newline: start a fresh line
    echo
    echo "VMMLAB $_n rc=$_rc"
    echo "VMMLAB $_n time_s=$(awk -v s="$_s" -v e="$_e" 'BEGIN { printf "%.2f", e - s }')"
    while IFS= read -r _l || [ -n "$_l" ]; do
        echo "VMMLAB $_n stderr: $_l"
    done <"/tmp/$_n.err"
    return "$_rc"
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

# End L1: -no-reboot on the QEMU side turns either call into an exit.
lab_l1_finish() {
    echo "VMMLAB done"
    sync
    poweroff -f
    reboot -f
}

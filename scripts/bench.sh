#!/usr/bin/env bash
# make bench: figures, not tests. Prints a table and one JSON line.
#  1. Host: cost of `vmm run` until the first KVM_RUN for --mem 512M, 4G and
#     64G (flat: nothing is pre-faulted), the CPU time from exec to it, the
#     whole process wall time for a tiny guest, and the VMM's resident memory
#     apart from guest RAM (medians of N runs on the host's own /dev/kvm).
#  2. Host: the virtio-blk data path without a guest (build/blkbench, QD32
#     4K random I/O) next to fio --ioengine=io_uring on the same file
#     (scripts/bench-host-blk; needs no /dev/kvm, runs with BENCH_LAB=0).
#  3. Lab: stock-kernel boot to init, vmm next to QEMU -accel kvm in the
#     same L1 boot (scripts/lab/bench-boot).
#  4. Lab: virtio-blk with fio in the guest, vmm (io_uring) next to QEMU
#     (aio=io_uring) on the same image (scripts/lab/bench-blk).
#  5. Lab: boot versus restore of a snapshot to a command's output, vmm next
#     to QEMU (-incoming from a saved state) in the same L1 boot; snapshot
#     sizes and vmm's snapshot pause (scripts/lab/bench-snapshot).
#  6. Lab: live migration of an idle and of a page-writing guest between two
#     processes, vmm next to QEMU's migrate: total time, downtime (the
#     VMM's and the guest's own), rounds, bytes (scripts/lab/bench-migrate).
#  7. Lab: shared folders, vmm --share next to QEMU vhost-user-fs with the
#     same virtiofsd, and vmm's virtio-blk disk beside them: sequential
#     write and read, untar of small files (scripts/lab/bench-fs).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RUNS:-11}
out=build/bench
mkdir -p "$out"

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "nan"}'; }

host_json=null
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	# per --mem size: setup until the first KVM_RUN (wall), and at 4G the
	# CPU time (user + system, all threads) from exec to that KVM_RUN, the
	# whole process's wall time, and the VMM's own resident memory
	setup_json='' setup_rows=()
	for mem in 512M 4G 64G; do
		: >"$out/setup_ms"; : >"$out/cpu_ms"; : >"$out/wall_ms"; : >"$out/rss_kib"
		for _ in $(seq "$N"); do
			t0=$(date +%s%N)
			build/vmm run -v --kernel build/guests/hello.elf --mem "$mem" --console none 2>"$out/err"
			t1=$(date +%s%N)
			echo $(( (t1 - t0) / 1000 )) | awk '{print $1/1000}' >>"$out/wall_ms"
			sed -n 's/.*first KVM_RUN \([0-9.]*\) ms.*/\1/p' "$out/err" >>"$out/setup_ms"
			sed -n 's/.*; \([0-9.]*\) ms of CPU since exec.*/\1/p' "$out/err" >>"$out/cpu_ms"
			sed -n 's/.*VMM itself \([0-9]*\) KiB.*/\1/p' "$out/err" >>"$out/rss_kib"
		done
		setup_rows+=("$mem $(median <"$out/setup_ms")")
		setup_json+="${setup_json:+,}\"$mem\":$(median <"$out/setup_ms")"
		if [ "$mem" = 4G ]; then
			cpu=$(median <"$out/cpu_ms"); wall=$(median <"$out/wall_ms"); rss=$(median <"$out/rss_kib")
		fi
	done
	printf '\nhost (/dev/kvm here, %s runs each, tiny guest)\n' "$N"
	for row in "${setup_rows[@]}"; do
		printf '  %-52s %10s\n' "setup until first KVM_RUN, --mem ${row% *}, median (ms)" "${row#* }"
	done
	printf '  %-52s %10s\n' "CPU from exec to first KVM_RUN, 4G (ms)" "$cpu"
	printf '  %-52s %10s\n' "whole process, exec to exit, 4G (ms)" "$wall"
	printf '  %-52s %10s\n' "VMM resident memory apart from guest RAM (KiB)" "$rss"
	host_json=$(printf '{"runs":%s,"setup_to_first_run_ms":{%s},"cpu_to_first_run_ms_4g":%s,"process_wall_ms_4g":%s,"vmm_rss_kib":%s}' "$N" "$setup_json" "$cpu" "$wall" "$rss")
else
	echo "host: /dev/kvm not usable here; host figures skipped"
fi

# bench_section LABEL SCRIPT: run a bench script, echo its JSON line (or null).
bench_section() {
	local label=$1 script=$2 log json
	log=$out/$(basename "$2").txt
	echo >&2
	if "$script" | tee "$log" >&2; then
		json=$(grep -E '^\{.*\}$' "$log" | tail -n 1)
		echo "${json:-null}"
		return
	fi
	echo "$label: $(basename "$script") could not run (see above)" >&2
	echo null
}
# lab_section LABEL SCRIPT: the same for a lab bench; BENCH_LAB=0 skips it.
lab_section() {
	if [ "${BENCH_LAB:-1}" = 0 ]; then
		printf '\n%s: skipped (BENCH_LAB=0)\n' "$1" >&2
		echo null
		return
	fi
	bench_section "$@"
}
host_blk_json=$(bench_section "host disk" scripts/bench-host-blk)
lab_json=$(lab_section lab scripts/lab/bench-boot)
blk_json=$(lab_section "lab disks" scripts/lab/bench-blk)
net_json=$(lab_section "lab network" scripts/lab/bench-net)
snap_json=$(lab_section "lab snapshots" scripts/lab/bench-snapshot)
mig_json=$(lab_section "lab migration" scripts/lab/bench-migrate)
fs_json=$(lab_section "lab shared folders" scripts/lab/bench-fs)
echo
echo "{\"host\":$host_json,\"host_blk\":$host_blk_json,\"lab\":$lab_json,\"lab_blk\":$blk_json,\"lab_net\":$net_json,\"lab_snapshot\":$snap_json,\"lab_migrate\":$mig_json,\"lab_fs\":$fs_json}" | tee "$out/bench.json"

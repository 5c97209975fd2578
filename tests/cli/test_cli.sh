#!/usr/bin/env bash
# The command line as a user meets it: exit statuses, exactly one stderr line
# for bad input, clean stdout, console sinks, signals. Uses $VMM (default
# build/vmm) and the tiny guests in build/guests. Boot cases skip without
# a usable /dev/kvm; bad-input cases never need it.
# Every case ends "CHECKS && ok NAME || bad NAME WHY": ok always succeeds,
# so bad runs exactly when a check failed.
# shellcheck disable=SC2015
set -u
VMM=${VMM:-build/vmm}
G=build/guests
T=$(mktemp -d /tmp/vmm-cli.XXXXXX)
# Run as root, vmm becomes nobody after setup (the jail): sockets and
# snapshot directories it reaches then must be reachable for nobody.
chmod 0711 "$T"
# Only this shell cleans up: a child killed between its fork and its exec
# runs the EXIT trap too (a watchdog below, killed early, removed $T once).
trap '[ "$BASHPID" != $$ ] || rm -rf "$T"' EXIT
pass=0 fail=0 skip=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1: $2"; }
skipped() { skip=$((skip + 1)); echo "skip - $1: $2"; }
have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# run NAME: runs "${cmd[@]}" capturing rc, stdout, stderr (quiet mode off).
run() {
	"$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	out=$(cat "$T/out")
	err=$(cat "$T/err")
	nerr=$(wc -l <"$T/err")
}

# expect_usage NAME RC NEEDLE ARGS...: exit RC, exactly one stderr line
# starting "vmm: " and containing NEEDLE, nothing on stdout.
expect_error() {
	local name=$1 want=$2 needle=$3
	shift 3
	run "$VMM" "$@"
	if [ "$rc" != "$want" ]; then bad "$name" "exit $rc, want $want ($err)"
	elif [ "$nerr" != 1 ]; then bad "$name" "$nerr stderr lines: $err"
	elif [[ "$err" != "vmm: "* ]]; then bad "$name" "stderr not 'vmm: ...': $err"
	elif [[ "$err" != *"$needle"* ]]; then bad "$name" "stderr lacks '$needle': $err"
	elif [ -n "$out" ]; then bad "$name" "stdout not empty: $out"
	else ok "$name"; fi
}

printf 'just text\n' >"$T/text"
: >"$T/empty"
truncate -s 32M "$T/big"

# --- usage and bad input: exit 2, one line naming the value -------------
run "$VMM"
[ "$rc" = 2 ] && [[ "$err" == usage:* ]] && [ -z "$out" ] && ok "no arguments" || bad "no arguments" "rc=$rc err=$err"
run "$VMM" --help
[ "$rc" = 0 ] && [[ "$out" == usage:* ]] && [ -z "$err" ] && ok "--help" || bad "--help" "rc=$rc"
run "$VMM" --version
[ "$rc" = 0 ] && [[ "$out" =~ ^vmm\ [0-9]+\.[0-9]+\.[0-9]+$ ]] && ok "--version" || bad "--version" "rc=$rc out=$out"
run "$VMM" run --help
[ "$rc" = 0 ] && [[ "$out" == *"exit status:"* ]] && [[ "$out" == *"--hugepages"* ]] && ok "run --help" || bad "run --help" "rc=$rc"

expect_error "unknown command" 2 "'frobnicate'" frobnicate
expect_error "unknown option" 2 "'--bogus'" run --kernel "$G/hello.elf" --bogus
expect_error "option without value" 2 "'--mem'" run --kernel "$G/hello.elf" --mem
expect_error "stray argument" 2 "'extra'" run --kernel "$G/hello.elf" extra
expect_error "missing --kernel" 2 "--kernel" run --mem 64M
expect_error "--mem 0" 2 "'0'" run --kernel "$G/hello.elf" --mem 0
expect_error "--mem abc" 2 "'abc'" run --kernel "$G/hello.elf" --mem abc
expect_error "--mem 12X" 2 "'12X'" run --kernel "$G/hello.elf" --mem 12X
expect_error "--mem too large" 2 "'4T'" run --kernel "$G/hello.elf" --mem 4T
expect_error "--cpus 0" 2 "'0'" run --kernel "$G/hello.elf" --cpus 0
expect_error "--cpus 999" 2 "'999'" run --kernel "$G/hello.elf" --cpus 999
expect_error "--cpus x" 2 "'x'" run --kernel "$G/hello.elf" --cpus x
expect_error "--hugepages bad" 2 "'4M'" run --kernel "$G/hello.elf" --hugepages 4M
expect_error "--console bad" 2 "'tty'" run --kernel "$G/hello.elf" --console tty
expect_error "kernel missing" 2 "'$T/nonexistent'" run --kernel "$T/nonexistent"
expect_error "kernel is a directory" 2 "not a regular file" run --kernel "$T"
expect_error "kernel is empty" 2 "is empty" run --kernel "$T/empty"
expect_error "initrd missing" 2 "'$T/nope'" run --kernel "$G/hello.elf" --initrd "$T/nope"
expect_error "--disk unknown key" 2 "'colour'" run --kernel "$G/hello.elf" --disk "path=$T/empty,colour=red"
expect_error "--disk without path" 2 "path=FILE" run --kernel "$G/hello.elf" --disk readonly=on
expect_error "--disk bad engine" 2 "'uring'" run --kernel "$G/hello.elf" --disk "path=$T/empty,engine=uring"
expect_error "--disk bad readonly" 2 "readonly='maybe'" run --kernel "$G/hello.elf" --disk "path=$T/empty,readonly=maybe"
expect_error "--disk queues=0" 2 "queues='0'" run --kernel "$G/hello.elf" --disk "path=$T/empty,queues=0"

# --- bad files: all checked before KVM is opened, so the same here and
# on any host; one line each, exit 2, and nothing created or modified ---
state() { find "$T" -printf '%p %s %m %T@\n' | sort; find "$T" -type f -exec md5sum {} + | sort; }
cp "$G/hello.elf" "$T/arm.elf"
cp "$G/hello.elf" "$T/hello.elf"
printf '\xb7\x00' | dd of="$T/arm.elf" bs=1 seek=18 conv=notrunc 2>/dev/null # e_machine: AArch64
truncate -s 1000 "$T/odd.img"
truncate -s 8M "$T/disk.img"
ln -s disk.img "$T/disk-link.img"
ln "$T/disk.img" "$T/disk-hard.img"
mkdir -p "$T/adir"
mkfifo "$T/fifo"
bz=build/lab/bzImage
[ -r "$bz" ] && head -c 200000 "$bz" >"$T/trunc-bz"
before=$(state)
bad_inputs=(
	"kernel is not a kernel|not a Linux kernel|--kernel $T/text --mem 16M"
	"ELF for another architecture|not a 64-bit x86-64 image|--kernel $T/arm.elf --mem 16M"
	"initrd larger than memory|does not fit|--kernel $G/hello.elf --mem 16M --initrd $T/big"
	"--disk missing file|'$T/nodisk'|--kernel $G/hello.elf --mem 16M --disk path=$T/nodisk"
	"--disk directory|is not a regular file|--kernel $G/hello.elf --mem 16M --disk path=$T/adir"
	"--disk empty image|empty image|--kernel $G/hello.elf --mem 16M --disk path=$T/empty"
	"--disk odd size|not a multiple of 512|--kernel $G/hello.elf --mem 16M --disk path=$T/odd.img"
	"--disk same path twice|are the same image|--kernel $G/hello.elf --mem 16M --disk path=$T/disk.img --disk path=$T/disk.img"
	"--disk same image by a link|are the same image|--kernel $G/hello.elf --mem 16M --disk path=$T/disk.img --disk path=$T/disk-link.img"
	"--net bad MAC|mac='01:00:00:00:00:01'|--kernel $G/hello.elf --net tap=t0,mac=01:00:00:00:00:01"
	"--net no tap|tap=NAME or user is missing|--kernel $G/hello.elf --net queues=2"
	"--net user with a tap|user and tap= exclude each other|--kernel $G/hello.elf --net user,tap=t0"
	"--net user, bad forward|forward='tcp:0:80' is not|--kernel $G/hello.elf --net user,forward=tcp:0:80"
	"--net user, forward of another protocol|forward='sctp:1:2' is not|--kernel $G/hello.elf --net user,forward=sctp:1:2"
	"--net tap with a forward|forward= is an option of --net user|--kernel $G/hello.elf --net tap=t0,forward=tcp:1:2"
	"--net user twice|--net user: given twice|--kernel $G/hello.elf --net user --net user"
	"--net user, two queue pairs|one queue pair|--kernel $G/hello.elf --net user,queues=2"
	"--vfio not an address|'0000:00:99.0'|--kernel $G/hello.elf --vfio 0000:00:99.0"
	"--expect bad regex|is not a regular expression|--kernel $G/hello.elf --expect a(b"
	"--fail bad regex|is not a regular expression|--kernel $G/hello.elf --fail [z-a]"
	"--timeout not a number|--timeout: 'soon'|--kernel $G/hello.elf --timeout soon"
	"--result not json|--result: 'yaml:x'|--kernel $G/hello.elf --result yaml:x"
	"--result in a missing directory|'$T/no/dir' does not exist|--kernel $G/hello.elf --result json:$T/no/dir/r.json"
	"--api-socket in a missing directory|'$T/no/dir' does not exist|--kernel $G/hello.elf --api-socket $T/no/dir/s"
	"--api-socket on a file|exists and is not a socket|--kernel $G/hello.elf --api-socket $T/text"
	"--console onto the kernel|is the file of --kernel|--kernel $T/hello.elf --mem 16M --console file:$T/hello.elf"
	"--console onto a disk by a link|is the file of --disk|--kernel $G/hello.elf --mem 16M --disk path=$T/disk.img --console file:$T/disk-link.img"
	"--result onto a disk by a hard link|is the file of --disk|--kernel $G/hello.elf --mem 16M --disk path=$T/disk.img --result json:$T/disk-hard.img"
	"--result onto the initrd|is the file of --initrd|--kernel $G/hello.elf --mem 16M --initrd $T/text --result json:$T/text"
	"--console onto the API socket|is the file of --api-socket|--kernel $G/hello.elf --mem 16M --api-socket $T/api.sock --console file:$T/api.sock"
	"--result onto --console|is the file of --console|--kernel $G/hello.elf --mem 16M --console file:$T/same.log --result json:$T/same.log"
	"--result a directory|'$T/adir' is a directory|--kernel $G/hello.elf --mem 16M --result json:$T/adir"
	"--result not a regular file|'$T/fifo' exists and is not a regular file|--kernel $G/hello.elf --mem 16M --result json:$T/fifo"
	"--expect seventeen times|at most 16 patterns|--kernel $G/hello.elf $(printf -- '--expect x%d ' $(seq 17))"
)
[ -r "$T/trunc-bz" ] && bad_inputs+=("truncated bzImage|kernel is truncated|--kernel $T/trunc-bz --mem 256M")
for c in "${bad_inputs[@]}"; do
	IFS='|' read -r name needle args <<<"$c"
	# shellcheck disable=SC2086  # the arguments split on spaces, on purpose
	expect_error "$name" 2 "$needle" run -q $args
done
expect_error "ctl without a command" 2 "usage: vmm ctl" ctl "$T/s"
expect_error "ctl to no socket" 1 "cannot connect to '$T/s'" ctl "$T/s" status
[ -r "$T/trunc-bz" ] || skipped "truncated bzImage" "no build/lab/bzImage (the lab's kernel) to cut"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$VMM" -a -r "$G/hello.elf"; then
	chmod 600 "$T/disk.img"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$VMM" run -q --kernel "$G/hello.elf" --disk "path=$T/disk.img"
	[ "$rc" = 2 ] && [ "$nerr" = 1 ] && [[ "$err" == *"cannot open '$T/disk.img'"*": Permission denied" ]] &&
		ok "--disk unreadable image" || bad "--disk unreadable image" "rc=$rc err=$err"
	chmod 644 "$T/disk.img"
	before=$(state)
else
	skipped "--disk unreadable image" "needs root, setpriv and files readable by nobody"
fi
[ "$(state)" = "$before" ] && ok "bad input created or changed no file" ||
	bad "bad input created or changed no file" "$(diff <(echo "$before") <(state) | head -n 5)"

# --- cases that need KVM ---
if have_kvm; then
	expect_error "cmdline too long" 2 "--cmdline" run -q --kernel "$G/hello.elf" --mem 16M --cmdline "$(head -c 70000 /dev/zero | tr '\0' x)"
	# A bzImage decompressed on the host (a tiny guest wrapped as one: no
	# decompressor of its own, so only that path boots it), cached by content
	for c in xz zstd gzip; do
		python3 tests/cli/mkbzimage.py "$G/bootinfo.elf" "$T/boot.$c" "$c"
		run env XDG_CACHE_HOME="$T/kc" "$VMM" run -v --kernel "$T/boot.$c" --mem 16M --cmdline "a=$c"
		[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=$c"$'\n'* ]] &&
			[[ "$err" == *"boot: kernel cache: vmlinux-"*" ($c, "*" bytes) stored in $T/kc/vmm"* ]] &&
			[[ "$err" == *"boot: bzImage kernel decompressed on the host: at 0x100000 (virtual offset 0x0), entry 0x100000, at its link address"* ]] &&
			ok "bzImage ($c) decompressed on the host and cached" || bad "bzImage $c" "rc=$rc $out $err"
	done
	kc_files() { find "$T/kc" -type f -printf '%f %s %m\n' | sort; }
	[ "$(kc_files | grep -c '^vmlinux-[0-9a-f]\{64\} [0-9]* 600$')" = 3 ] && [ "$(find "$T/kc" | wc -l)" = 5 ] &&
		ok "kernel cache: one private file per image, nothing else" || bad "kernel cache files" "$(find "$T/kc")"
	run env XDG_CACHE_HOME="$T/kc" "$VMM" run -v --kernel "$T/boot.xz" --mem 16M --cmdline "a=again"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=again"$'\n'* ]] && [[ "$err" == *"boot: bzImage kernel from the cache, decompressed on the host"* ]] &&
		[[ "$err" != *"stored in"* ]] && ok "kernel cache: the second boot finds it" || bad "kernel cache hit" "rc=$rc $err"
	kc_xz=$T/kc/vmm/vmlinux-$(sha256sum "$T/boot.xz" | cut -d ' ' -f 1)
	truncate -s 100 "$kc_xz"
	run env XDG_CACHE_HOME="$T/kc" "$VMM" run -v --kernel "$T/boot.xz" --mem 16M --cmdline "a=mended"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=mended"$'\n'* ]] && [[ "$err" == *"stored in $T/kc/vmm"* ]] &&
		[ "$(stat -c %s "$kc_xz")" -gt 100 ] && ok "kernel cache: a damaged entry is replaced" || bad "kernel cache damaged" "rc=$rc $err"
	run env XDG_CACHE_HOME="$T/kc2" "$VMM" run -v --no-kernel-cache --kernel "$T/boot.xz" --mem 16M --cmdline "a=nocache"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=nocache"$'\n'* ]] && [[ "$err" == *"boot: bzImage kernel decompressed on the host"* ]] &&
		[ ! -e "$T/kc2" ] && ok "--no-kernel-cache: nothing kept" || bad "--no-kernel-cache" "rc=$rc $err"
	run env XDG_CACHE_HOME="$T/text" "$VMM" run -v --kernel "$T/boot.gzip" --mem 16M --cmdline "a=rocache"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=rocache"$'\n'* ]] && [[ "$err" == *"boot: kernel cache: cannot write to $T/text/vmm"* ]] &&
		[ "$(cat "$T/text")" = "just text" ] && ok "kernel cache: one that cannot be written, the boot goes on" ||
		bad "kernel cache unwritable" "rc=$rc $err"
	run env XDG_CACHE_HOME="$T/kc" "$VMM" run -q --kernel "$T/boot.xz" --mem 16M --cmdline "a=quiet"
	[ "$rc" = 0 ] && [ -z "$err" ] && ok "kernel cache: says nothing without -v" || bad "kernel cache quiet" "rc=$rc $err"
	rm -rf "$T/kc" "$T"/boot.*
	run "$VMM" run -q --kernel "$G/bootinfo.elf" --mem 16M --cmdline "a=1" --append "b=2 c"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: a=1 b=2 c"$'\n'* ]] && ok "--append: after --cmdline, one space" ||
		bad "--append" "rc=$rc $out $err"
	run "$VMM" run -q --kernel "$G/bootinfo.elf" --mem 16M --append "b=2"
	[ "$rc" = 0 ] && [[ "$out" == "cmdline: console=ttyS0 "*" b=2"$'\n'* ]] && ok "--append: after the default command line" ||
		bad "--append default" "rc=$rc $out $err"
	# Block devices as disks: loop devices, read by the guest's own driver
	# (the hostile guest's bar-collide reads sector 0 of each disk)
	if command -v losetup >/dev/null && [ "$(id -u)" = 0 ] && loop_a=$(losetup -f --show "$T/disk.img" 2>/dev/null); then
		printf VMMDISK0 | dd of="$loop_a" conv=notrunc 2>/dev/null
		truncate -s 1M "$T/disk2.raw"
		printf VMMDISK1 | dd of="$T/disk2.raw" conv=notrunc 2>/dev/null
		loop_b=$(losetup -f --show "$T/disk2.raw")
		run "$VMM" run -q --kernel "$G/hostile.elf" --mem 16M --cmdline attack=bar-collide \
			--disk "path=$loop_a" --disk "path=$loop_b"
		[ "$rc" = 42 ] && [[ "$out" == *"recovered: VMMDISK0"*"vdb: VMMDISK1"* ]] &&
			ok "--disk on block devices: the guest reads both" || bad "--disk block devices" "rc=$rc $out $err"
		# a snapshot (confined: it may not open the device) and its restore
		run "$VMM" run -q --kernel "$G/chatty.elf" --mem 64M --cmdline mode=count --disk "path=$loop_b" \
			--snapshot-at 'count 0000000000000003' --snapshot-dir "$T/bsnap"
		run timeout 20 "$VMM" restore -q "$T/bsnap" --expect 'count 0000000000000008'
		[ "$rc" = 0 ] && [[ "$out" == "count 0000000000000004"* ]] &&
			ok "--disk on a block device: snapshot and restore" || bad "--disk block device snapshot" "rc=$rc $err"
		rm -rf "$T/bsnap"
		losetup -d "$loop_a" "$loop_b"
		dd if=/dev/zero of="$T/disk.img" bs=8 count=1 conv=notrunc 2>/dev/null
		# a mounted one is the host's: refused (O_EXCL), read-only is not
		truncate -s 8M "$T/mnt.raw"
		mke2fs -q -F "$T/mnt.raw" >/dev/null 2>&1
		loop_c=$(losetup -f --show "$T/mnt.raw")
		mkdir -p "$T/mnt"
		if mount "$loop_c" "$T/mnt" 2>/dev/null; then
			run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$loop_c"
			[ "$rc" = 1 ] && [ "$err" = "vmm: --disk: '$loop_c' is in use (mounted, or open by another program)" ] &&
				ok "--disk on a mounted block device: refused, exit 1" || bad "--disk mounted" "rc=$rc $err"
			run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$loop_c,readonly=on"
			[ "$rc" = 0 ] && ok "--disk on a mounted block device, read-only: allowed" || bad "--disk mounted ro" "rc=$rc $err"
			umount "$T/mnt"
		else
			skipped "--disk on a mounted block device" "cannot mount a loop device here"
		fi
		losetup -d "$loop_c"
	else
		skipped "--disk on block devices" "needs root and a free loop device"
	fi
	expect_error "--disk on a character device" 2 "'/dev/null' is not a regular file or a block device" \
		run -q --kernel "$G/hello.elf" --mem 16M --disk path=/dev/null
	# --net user: passt started for the run, gone with it
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --net user,forward=tcp:18431:80
	[ "$rc" = 0 ] && [ "$out" = "hello from guest" ] && [ -z "$err" ] &&
		ok "--net user: the guest runs with passt behind its NIC" || bad "--net user" "rc=$rc $err"
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("0.0.0.0", 18432)); s.listen(); time.sleep(20)' &
	holder=$!
	sleep 0.5
	expect_error "--net user: a forwarded port in use" 2 "forward=tcp:18432:80: host port 18432: in use" \
		run -q --kernel "$G/hello.elf" --mem 16M --net user,forward=tcp:18432:80
	kill $holder
	run env PATH=/nonexistent "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --net user
	[ "$rc" = 1 ] && [ "$err" = "vmm: --net user: passt is not installed or not on PATH (Debian: apt install passt)" ] &&
		ok "--net user without passt: one line, exit 1" || bad "--net user without passt" "rc=$rc $err"
	expect_error "console dir missing" 2 "'$T/no/dir/log'" run -q --kernel "$G/hello.elf" --mem 16M --console "file:$T/no/dir/log"
	[ ! -e "$T/no" ] && ok "nothing half-written" || bad "nothing half-written" "$T/no exists"
	run "$VMM" run -q --kernel "$T/text" --mem 16M --console "file:$T/never.log"
	[ "$rc" = 2 ] && [ ! -e "$T/never.log" ] && ok "bad kernel leaves no console file" || bad "bad kernel leaves no console file" "rc=$rc"

	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img" --disk "path=$T/disk2.img"
	[ "$rc" = 2 ] && [ "$nerr" = 1 ] && ok "second disk missing" || bad "second disk missing" "rc=$rc err=$err"
	truncate -s 8M "$T/disk2.img"
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img" --disk "path=$T/disk2.img,readonly=on,engine=sync"
	[ "$rc" = 0 ] && [ "$out" = "hello from guest" ] && [ -z "$err" ] && ok "boot with two disks" || bad "boot with two disks" "rc=$rc err=$err"
	# The lock goes when vmm does: runs back to back all get the image.
	rcs=""
	for _ in 1 2 3 4 5 6; do
		"$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img" >/dev/null 2>>"$T/err6"
		rcs="$rcs$?"
	done
	[ "$rcs" = 000000 ] && ok "six runs back to back on one image" || bad "six runs back to back on one image" "$rcs $(sort -u "$T/err6")"
	# A writable image is locked: a second vmm gets one line and exit 1.
	: >"$T/hang.out" # emptied first: a stale "halting" is not this run's
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --disk "path=$T/disk.img" >"$T/hang.out" 2>&1 </dev/null &
	hang=$!
	for _ in $(seq 50); do grep -q halting "$T/hang.out" && break; sleep 0.1; done
	expect_error "--disk locked by another vmm" 1 "is locked by another process" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img"
	expect_error "--disk readonly beside a writer" 1 "is locked by another process" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img,readonly=on"
	kill "$hang"
	wait "$hang" 2>/dev/null

	free1g=$(cat /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages 2>/dev/null || echo 0)
	if [ "$free1g" = 0 ]; then
		expect_error "--hugepages 1G none free" 1 "huge pages needed" run -q --kernel "$G/hello.elf" --mem 1G --hugepages 1G
	else
		skipped "--hugepages 1G none free" "this host has free 1G pages"
	fi

	# Without permission on /dev/kvm: one line naming it, a runtime failure.
	if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ "$(stat -c %a /dev/kvm)" = 600 ] &&
		setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$VMM" -a -r "$G/hello.elf"; then
		run setpriv --reuid=65534 --regid=65534 --clear-groups "$VMM" run --kernel "$G/hello.elf" --mem 16M
		[ "$rc" = 1 ] && [ "$nerr" = 1 ] && [[ "$err" == "vmm: cannot open /dev/kvm: Permission denied"* ]] &&
			ok "/dev/kvm without permission" || bad "/dev/kvm without permission" "rc=$rc err=$err"
	else
		skipped "/dev/kvm without permission" "needs root, setpriv, a 0600 /dev/kvm and files readable by nobody"
	fi

	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M
	[ "$rc" = 0 ] && [ "$out" = "hello from guest" ] && [ -z "$err" ] && ok "boot to stdout" || bad "boot to stdout" "rc=$rc out=$out err=$err"
	run "$VMM" run --kernel "$G/hello.elf" --mem 16M
	if grep -qwE 'vmx|svm' /proc/cpuinfo; then
		[ -z "$err" ] && ok "no warning on hardware KVM" || bad "no warning on hardware KVM" "$err"
	else
		[ "$nerr" = 1 ] && [[ "$err" == *"not hardware-assisted"* ]] && ok "one warning on software KVM" || bad "one warning on software KVM" "$err"
	fi
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --console "file:$T/con.log"
	[ "$rc" = 0 ] && [ -z "$out" ] && [ "$(cat "$T/con.log")" = "hello from guest" ] && ok "console to file" || bad "console to file" "rc=$rc out=$out"
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --console none
	[ "$rc" = 0 ] && [ -z "$out" ] && [ -z "$err" ] && ok "console none" || bad "console none" "rc=$rc"
	out=$(printf 'abc def\n' | "$VMM" run -q --kernel "$G/echo.elf" --mem 16M 2>"$T/err")
	rc=$?
	[ "$rc" = 0 ] && [ "$out" = $'echo: ready\ngot: abc def' ] && ok "stdin reaches the guest" || bad "stdin reaches the guest" "rc=$rc out=$out"
	run "$VMM" run -q --kernel "$G/crash.elf" --mem 16M
	[ "$rc" = 1 ] && [ "$nerr" = 1 ] && [[ "$err" == *"triple fault"* ]] && ok "triple fault exits 1" || bad "triple fault exits 1" "rc=$rc err=$err"
	run "$VMM" run -q --kernel "$G/smp.elf" --mem 16M --cpus 3 --hugepages off
	[ "$rc" = 0 ] && [ "$out" = "smp: 03 cpus: 00 01 02" ] && ok "three vCPUs" || bad "three vCPUs" "rc=$rc out=$out"
	# the I/O thread (the main one: its id is the pid) is SCHED_BATCH (3),
	# each vCPU thread is not (0)
	: >"$T/out"
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --cpus 2 >"$T/out" 2>"$T/err" </dev/null &
	pid=$!
	for _ in $(seq 50); do grep -q halting "$T/out" && break; sleep 0.1; done
	io="" vcpus=""
	for t in "/proc/$pid/task"/*; do
		p=$(awk '{ print $41 }' "$t/stat" 2>/dev/null) || continue
		if [ "${t##*/}" = "$pid" ]; then
			io=$p
		elif [[ "$(cat "$t/comm" 2>/dev/null)" == vcpu* ]]; then
			vcpus="$vcpus$p"
		fi
	done
	kill -s TERM $pid
	wait $pid
	[ "$io" = 3 ] && [ "$vcpus" = 00 ] && ok "the I/O thread yields to the vCPUs (SCHED_BATCH)" ||
		bad "the I/O thread yields to the vCPUs" "I/O thread policy '$io', vCPUs '$vcpus'"
	for sig in TERM INT; do
		: >"$T/out" # emptied first: a stale "halting" is not this run's
		"$VMM" run -q --kernel "$G/hang.elf" --mem 16M >"$T/out" 2>"$T/err" </dev/null &
		pid=$!
		for _ in $(seq 50); do grep -q halting "$T/out" && break; sleep 0.1; done
		kill -s $sig $pid
		wait $pid
		rc=$?
		want=$((128 + $(kill -l $sig)))
		[ "$rc" = $want ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "stopped by SIG$sig" "$T/err" && ok "SIG$sig exits $want" || bad "SIG$sig exits $want" "rc=$rc $(cat "$T/err")"
	done

	# --- the kernel is read, not mapped: cut while vmm starts, no SIGBUS
	if cc -shared -fPIC -O1 -o "$T/shrink.so" tests/cli/shrink_on_close.c -ldl 2>"$T/cc.err"; then
		cp "$G/hello.elf" "$T/cut.elf"
		run env LD_PRELOAD="$T/shrink.so" SHRINK_PATH="$(realpath "$T/cut.elf")" \
			ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
			"$VMM" run -q --kernel "$T/cut.elf" --mem 16M
		[ "$rc" != 135 ] && [ "$(stat -c %s "$T/cut.elf")" = 0 ] && [[ "$err" == *"shrink_on_close: truncated"* ]] &&
			ok "kernel truncated while vmm starts: no SIGBUS (exit $rc)" ||
			bad "kernel truncated while vmm starts" "rc=$rc size=$(stat -c %s "$T/cut.elf") $err"
	else
		skipped "kernel truncated while vmm starts" "cannot build the preload shim: $(head -n 1 "$T/cc.err")"
	fi

	# --- stop works in every state, and leaves nothing behind -----------
	# wait_bounded PID SECS: wait for PID; after SECS it is killed (-9),
	# so a vmm that does not stop fails its case instead of hanging the suite.
	# The watchdog ends by itself once PID is reaped: killing it early
	# raced its fork (it ran this script's EXIT trap and removed $T).
	wait_bounded() {
		(
			for ((i = 0; i < $2 * 10; i++)); do
				kill -0 "$1" 2>/dev/null || exit 0
				sleep 0.1
			done
			kill -9 "$1" 2>/dev/null
		) &
		local dog=$! rc
		wait "$1"
		rc=$?
		wait "$dog"
		return $rc
	}
	# json_field FILE KEY: one field of a --result file (strict parse).
	json_field() {
		python3 -c 'import json, sys
def no(c): raise ValueError("non-standard constant " + c)
print(json.load(open(sys.argv[1]), parse_constant=no)[sys.argv[2]])' "$1" "$2" 2>&1
	}
	leftovers() { find "$T" -name '*.tmp.*' -o -name 'p.sock' | tr '\n' ' '; }
	start_paused() { # start hang.elf with a socket and a result, then pause it
		rm -f "$T/p.sock" "$T/p.json" "$T/p.out" # a stale "halting" is not this run's
		"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --api-socket "$T/p.sock" --result "json:$T/p.json" "$@" \
			>"$T/p.out" 2>"$T/p.err" </dev/null &
		pid=$!
		for _ in $(seq 50); do grep -q halting "$T/p.out" && break; sleep 0.1; done
		preply=$("$VMM" ctl "$T/p.sock" pause)
	}
	for sig in TERM INT; do
		start_paused
		kill -s $sig $pid
		wait_bounded $pid 20
		rc=$?
		want=$((128 + $(kill -l $sig)))
		[ "$preply" = '{"ok":true,"state":"paused"}' ] && [ "$rc" = $want ] &&
			[ "$(json_field "$T/p.json" outcome)" = signal ] && [ -z "$(leftovers)" ] &&
			ok "paused, SIG$sig exits $want" || bad "paused, SIG$sig exits $want" "pause=$preply rc=$rc left=$(leftovers) $(cat "$T/p.err")"
	done
	start_paused --timeout 2
	wait_bounded $pid 20
	rc=$?
	[ "$rc" = 124 ] && [ "$(json_field "$T/p.json" outcome)" = timeout ] && [ -z "$(leftovers)" ] &&
		ok "paused, --timeout exits 124" || bad "paused, --timeout exits 124" "rc=$rc left=$(leftovers) $(cat "$T/p.err")"
	start_paused
	sreply=$("$VMM" ctl "$T/p.sock" status)
	"$VMM" ctl "$T/p.sock" stop >/dev/null
	wait_bounded $pid 20
	rc=$?
	[[ "$sreply" == '{"ok":true,"state":"paused",'* ]] && [ "$rc" = 143 ] && [ -z "$(leftovers)" ] &&
		ok "paused, api stop ends it" || bad "paused, api stop ends it" "status=$sreply rc=$rc $(cat "$T/p.err")"
	# a result that cannot be put in place is one line, under the filter too
	mkdir -p "$T/rd"
	: >"$T/out"
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --result "json:$T/rd/r.json" >"$T/out" 2>"$T/err" </dev/null &
	pid=$!
	for _ in $(seq 50); do grep -q halting "$T/out" && break; sleep 0.1; done
	rm -rf "$T/rd"
	kill -TERM $pid
	wait_bounded $pid 20
	rc=$?
	[ "$rc" = 143 ] && [ "$(cat "$T/err")" = "vmm: --result: cannot write '$T/rd/r.json': No such file or directory
vmm: stopped by SIGTERM" ] &&
		ok "--result that cannot be written: one line, the run's status" || bad "--result that cannot be written" "rc=$rc $(cat "$T/err")"

	# Ctrl-A x on the console's terminal ends a paused VM too
	rm -f "$T/p.sock"
	got=$(python3 - "$VMM" "$G/hang.elf" "$T/p.sock" <<'PY'
import os, pty, subprocess, sys, time
m, s = pty.openpty()
p = subprocess.Popen([sys.argv[1], "run", "-q", "--kernel", sys.argv[2], "--mem", "16M",
                      "--api-socket", sys.argv[3]], stdin=s, stdout=s, stderr=subprocess.PIPE)
for _ in range(100):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
pause = subprocess.run([sys.argv[1], "ctl", sys.argv[3], "pause"], capture_output=True, text=True).stdout.strip()
os.write(m, b"\x01x")
try:
    err = p.communicate(timeout=20)[1].decode().strip()
except subprocess.TimeoutExpired:
    p.kill()
    err = "still running 20 s after Ctrl-A x"
print(pause, p.returncode, err)
PY
)
	[ "$got" = '{"ok":true,"state":"paused"} 130 vmm: stopped from the console (Ctrl-A x)' ] &&
		ok "paused, Ctrl-A x exits 130" || bad "paused, Ctrl-A x exits 130" "$got"
	for sig in QUIT ALRM HUP PIPE; do
		: >"$T/out" # emptied first: a stale "halting" is not this run's
		"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --result "json:$T/s.json" >"$T/out" 2>"$T/err" </dev/null &
		pid=$!
		for _ in $(seq 50); do grep -q halting "$T/out" && break; sleep 0.1; done
		kill -s $sig $pid
		wait_bounded $pid 20
		rc=$?
		want=$((128 + $(kill -l $sig)))
		[ "$rc" = $want ] && [ "$(cat "$T/err")" = "vmm: stopped by SIG$sig" ] &&
			[ "$(json_field "$T/s.json" status)" = $want ] && [ -z "$(leftovers)" ] &&
			ok "SIG$sig exits $want" || bad "SIG$sig exits $want" "rc=$rc $(cat "$T/err")"
	done

	# --- a console reader that stalls never stalls the guest or the stop
	# (the reader sleeps on: vmm must end while it still holds the pipe)
	rm -f "$T/rc"
	# shellcheck disable=SC2216  # the reader that never reads, on purpose
	{ "$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=flood --timeout 2 \
		2>"$T/err"; echo $? >"$T/rc"; } | sleep 40 &
	reader=$!
	for _ in $(seq 150); do [ -s "$T/rc" ] && break; sleep 0.1; done
	kill -0 "$reader" 2>/dev/null && alive=yes || alive=no
	kill "$reader" 2>/dev/null
	wait "$reader" 2>/dev/null
	rc=$(cat "$T/rc" 2>/dev/null)
	[ "$rc" = 124 ] && [ "$alive" = yes ] && ok "stalled console reader: --timeout still ends the run" ||
		bad "stalled console reader: --timeout" "rc=$rc, ended before the reader: $alive, $(cat "$T/err")"
	# Past the pipe's and vmm's buffers the bytes are dropped and counted;
	# then SIGTERM still ends the run at once.
	rm -f "$T/c.sock"
	# shellcheck disable=SC2216  # the reader that never reads, on purpose
	{ "$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=flood --api-socket "$T/c.sock" \
		--result "json:$T/c.json" 2>"$T/err" & echo $! >"$T/pid"; wait $!; } | sleep 40 &
	reader=$!
	for _ in $(seq 50); do [ -S "$T/c.sock" ] && break; sleep 0.1; done
	dropped=0
	for _ in $(seq 300); do
		dropped=$("$VMM" ctl "$T/c.sock" stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["console_dropped_bytes"])')
		[ "$dropped" -gt 0 ] 2>/dev/null && break
		sleep 0.1
	done
	pid=$(cat "$T/pid")
	kill -TERM "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill "$reader" 2>/dev/null
	wait "$reader" 2>/dev/null
	# shellcheck disable=SC2002  # cat's own error, if any, goes in the message
	[ "$dropped" -gt 0 ] 2>/dev/null && [ "$(json_field "$T/c.json" status)" = 143 ] &&
		[ "$(json_field "$T/c.json" console_dropped_bytes)" -ge "$dropped" ] &&
		ok "stalled console reader: bytes dropped and counted, SIGTERM ends the run" ||
		bad "stalled console reader: dropped bytes" "dropped=$dropped $(cat "$T/err") $(cat "$T/c.json" 2>&1 | head -c 300)"
	# vmm writes without blocking through a description of its own: the
	# terminal or pipe it shares with its parent keeps its flags, even
	# when vmm is killed
	got=$(python3 - "$VMM" "$G/chatty.elf" <<'PY'
import fcntl, os, pty, signal, subprocess, sys, time
m, s = pty.openpty()
r, w = os.pipe()
seen = []
for out in (s, w):
    p = subprocess.Popen([sys.argv[1], "run", "-q", "--kernel", sys.argv[2], "--mem", "16M",
                          "--cmdline", "mode=flood"], stdin=s, stdout=out, stderr=subprocess.DEVNULL)
    time.sleep(1)
    seen.append(fcntl.fcntl(out, fcntl.F_GETFL) & os.O_NONBLOCK)
    p.send_signal(signal.SIGKILL)
    p.wait()
    seen.append(fcntl.fcntl(out, fcntl.F_GETFL) & os.O_NONBLOCK)
print("blocking" if not any(seen) else "changed %s" % seen)
PY
)
	[ "$got" = blocking ] && ok "a shared terminal or pipe keeps its flags" || bad "a shared terminal or pipe keeps its flags" "$got"
	got=$(python3 - "$VMM" "$G/hello.elf" <<'PY'
import socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "run", "-q", "--kernel", sys.argv[2], "--mem", "16M"],
                     stdout=a.fileno(), stderr=subprocess.PIPE)
a.close()
err = p.communicate(timeout=30)[1]
print(p.returncode, repr(b.recv(100)), repr(err))
PY
)
	[ "$got" = "0 b'hello from guest\\n' b''" ] && ok "console to a socket" || bad "console to a socket" "$got"
	out=$("$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=flood 2>"$T/err" | head -c 300000 | wc -c)
	[ "$out" = 300000 ] && [ "$(cat "$T/err")" = "vmm: stopped by SIGPIPE" ] &&
		ok "console reader gone: SIGPIPE ends the run" || bad "console reader gone" "$out bytes, $(cat "$T/err")"
	out=$("$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=bytes | od -An -tx1 | tr -d ' \n')
	want=$(printf '%s' "$(seq 1 31 | grep -vxE '10|13'; seq 127 255)" | xargs printf '%02x')225c204d41524b0a
	[ "$out" = "$want" ] && ok "console bytes through a pipe, unchanged" || bad "console bytes through a pipe" "$out"

	# --- scripted runs mean what they say -------------------------------
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --expect NEVER --result "json:$T/e.json"
	[ "$rc" = 1 ] && [ "$err" = "vmm: the guest ended before --expect matched (guest reset)" ] &&
		[ "$(json_field "$T/e.json" outcome)" = reset ] && [ "$(json_field "$T/e.json" matched_line)" = None ] &&
		ok "guest ends before --expect: exit 1" || bad "guest ends before --expect" "rc=$rc $err"
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --expect NEVER --expect 'from gu'
	[ "$rc" = 0 ] && ok "any --expect matches" || bad "any --expect matches" "rc=$rc $err"
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --fail NEVER --fail '^hello' --expect guest
	[ "$rc" = 1 ] && [[ "$err" == *"console matched --fail: hello from guest" ]] &&
		ok "any --fail fails" || bad "any --fail fails" "rc=$rc $err"
	run "$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=noeol --expect 'RESULT: PASS$' --result "json:$T/n.json"
	[ "$rc" = 0 ] && [ "$(json_field "$T/n.json" matched_line)" = "RESULT: PASS" ] &&
		[ "$(json_field "$T/n.json" outcome)" = expect ] &&
		ok "a last line without a newline is checked" || bad "a last line without a newline" "rc=$rc $err"
	run "$VMM" run -q --kernel "$G/chatty.elf" --mem 16M --cmdline mode=bytes --expect MARK --result "json:$T/b.json"
	got=$(python3 -c 'import json, sys
raw = open(sys.argv[1], "rb").read()
assert all(0x20 <= b < 0x7f for b in raw[:-1]) and raw[-1:] == b"\n", "not one ASCII line"
r = json.loads(raw)
want = "".join(map(chr, [c for c in range(1, 32) if c not in (10, 13)] + list(range(127, 256)))) + "\"\\ MARK"
assert r["matched_line"] == want, r["matched_line"]
assert r["schema"] == 1 and r["outcome"] == "expect" and r["status"] == 0, r
assert r["console_dropped_bytes"] == 0 and r["vmm_version"]
print("ok")' "$T/b.json" 2>&1 | tail -n 1)
	[ "$rc" = 0 ] && [ "$got" = ok ] && ok "--result: strict JSON whatever the guest prints" || bad "--result: strict JSON" "rc=$rc $got"
	: >"$T/hang.out" # emptied first: a stale "halting" is not this run's
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --disk "path=$T/disk.img" >"$T/hang.out" 2>&1 </dev/null &
	hang=$!
	for _ in $(seq 50); do grep -q halting "$T/hang.out" && break; sleep 0.1; done
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --disk "path=$T/disk.img" --result "json:$T/l.json"
	kill "$hang"
	wait "$hang" 2>/dev/null
	[ "$rc" = 1 ] && [ "$(json_field "$T/l.json" outcome)" = host_error ] &&
		[[ "$(json_field "$T/l.json" reason)" == *"is locked by another process"* ]] &&
		ok "--result written when the run fails before the guest starts" || bad "--result on an early failure" "rc=$rc $err"

	# --- the control socket never blocks the I/O thread ------------------
	rm -f "$T/a.sock"
	: >"$T/out" # emptied first: a stale "halting" is not this run's
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --api-socket "$T/a.sock" >"$T/out" 2>"$T/err" </dev/null &
	pid=$!
	for _ in $(seq 50); do grep -q halting "$T/out" && break; sleep 0.1; done
	[ "$(stat -c %a "$T/a.sock")" = 600 ] && ok "--api-socket is 0600" || bad "--api-socket is 0600" "$(stat -c %a "$T/a.sock")"
	got=$(tests/cli/api_client.py split "$T/a.sock")
	[[ "$got" == '{"ok":true,"state":"running",'* ]] && ok "api: a request in two writes is one line" || bad "api: a request in two writes" "$got"
	got=$(tests/cli/api_client.py halfclose "$T/a.sock" pause)
	[ "$got" = '{"ok":true,"state":"paused"}' ] && ok "api: a pause from a client that shut its side is answered" ||
		bad "api: pause, half-closed" "$got"
	"$VMM" ctl "$T/a.sock" resume >/dev/null
	got=$(tests/cli/api_client.py idle "$T/a.sock" 12 status 2>"$T/lat")
	[[ "$got" == '{"ok":true,"state":"running",'* ]] && ok "api: answered with 12 idle clients connected ($(cat "$T/lat") ms)" ||
		bad "api: 12 idle clients" "reply '$got', $(tail -n 3 "$T/lat")"
	got=$(tests/cli/api_client.py silent "$T/a.sock")
	[[ "$got" == '{"ok":false,"error":"no request within 5 s"} '[56] ]] && ok "api: an idle client is closed after 5 s" ||
		bad "api: idle client closed" "$got"
	kill $pid
	wait_bounded $pid 20

	# --- vsock's host side (the tiny guests have no driver for it) ------
	V=$T/vs
	mkdir -p "$V"
	chmod 1777 "$V" # the jail writes the snapshot as nobody (and T is 0711)
	: >"$V/file"
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --vsock "cid=3,socket=$V/file"
	[ "$rc" = 2 ] && [ "$err" = "vmm: --vsock: socket=$V/file: exists and is not a socket" ] && [ -f "$V/file" ] &&
		ok "--vsock: a file at the socket's path: refused, left alone" || bad "--vsock on a file" "rc=$rc $err"
	"$VMM" run -q --kernel "$G/chatty.elf" --mem 64M --cmdline mode=count --vsock "cid=3,socket=$V/v.sock" \
		--api-socket "$V/a.sock" --snapshot-dir "$V" >"$V/out" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 50); do [ -S "$V/a.sock" ] && break; sleep 0.1; done
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --vsock "cid=4,socket=$V/v.sock"
	[ -S "$V/v.sock" ] && [ "$rc" = 2 ] && [ "$err" = "vmm: --vsock: socket=$V/v.sock: a program listens there already" ] &&
		ok "--vsock: a second vmm on a live socket: refused" || bad "--vsock on a live socket" "rc=$rc $err"
	got=$("$VMM" ctl "$V/a.sock" snapshot "$V/snap")
	kill -KILL $pid
	wait_bounded $pid 20 2>/dev/null # bash's "Killed" line for its job
	[[ "$got" == '{"ok":true,'* ]] && [ -S "$V/v.sock" ] && "$VMM" snapshot-info "$V/snap" | grep -q '^vsock device v1 ' &&
		ok "--vsock: snapshot has a vsock section" || bad "--vsock snapshot" "$got"
	"$VMM" restore "$V/snap" >"$V/rout" 2>"$V/rerr" </dev/null &
	pid=$!
	for _ in $(seq 50); do grep -q '^count 00000000000000' "$V/rout" && break; sleep 0.1; done
	[ -S "$V/v.sock" ] && grep -q '^count 00000000000000' "$V/rout" &&
		ok "--vsock: restore takes over a stale socket (a killed vmm's)" || bad "--vsock restore" "$(cat "$V/rerr")"
	kill $pid
	wait_bounded $pid 20
	[ ! -e "$V/v.sock" ] && ok "--vsock: the socket is removed at exit" || bad "--vsock socket removed" "$(ls "$V")"

	# --- shared folders: virtiofsd starts and stops with vmm -------------
	run "$VMM" run -v --kernel "$G/hello.elf" --mem 16M,shared=on
	[ "$rc" = 0 ] && [[ "$err" == *"vmm: mem: 16 MiB of guest RAM, shared memfd"* ]] &&
		ok "--mem 16M,shared=on: RAM in a memfd" || bad "--mem shared=on" "rc=$rc $err"
	if [ -x /usr/lib/qemu/virtiofsd ]; then
		mkdir -p "$T/share"
		run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --share "$T/share"
		[ "$rc" = 0 ] && [ -z "$err" ] && ok "--share: virtiofsd started, handshake done, clean exit" ||
			bad "--share" "rc=$rc $err"
		run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --share "$T/none"
		[ "$rc" = 2 ] && [ "$err" = "vmm: --share: '$T/none' does not exist" ] &&
			ok "--share: a missing folder: exit 2, one line" || bad "--share missing" "rc=$rc $err"
		run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --share "$T/text"
		[ "$rc" = 2 ] && [ "$err" = "vmm: --share: '$T/text' is not a directory" ] &&
			ok "--share: a file: exit 2, one line" || bad "--share file" "rc=$rc $err"
		run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --fs "tag=x,socket=$T/none.sock"
		[ "$rc" = 2 ] && [ "$err" = "vmm: --fs: tag=x: vhost-user socket $T/none.sock: No such file or directory" ] &&
			ok "--fs: no back-end there: exit 2, one line" || bad "--fs no socket" "rc=$rc $err"
		rm -f "$T/f.sock"
		"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --share "$T/share,tag=t1" --api-socket "$T/f.sock" \
			>"$T/fs.out" 2>&1 </dev/null &
		pid=$!
		for _ in $(seq 50); do grep -q halting "$T/fs.out" && break; sleep 0.1; done
		got=$("$VMM" ctl "$T/f.sock" snapshot "$T/fsnap")
		[ "$got" = '{"ok":false,"error":"device fs0 cannot be saved: its files and requests live in its vhost-user back-end"}' ] &&
			[ ! -e "$T/fsnap" ] && ok "--share: snapshot refused in one line, nothing written" || bad "--share snapshot" "$got"
		got=$("$VMM" ctl "$T/f.sock" pause)$("$VMM" ctl "$T/f.sock" resume)
		[ "$got" = '{"ok":true,"state":"paused"}{"ok":true,"state":"running"}' ] &&
			ok "--share: pause and resume" || bad "--share pause" "$got"
		vfsd=$(pgrep -P $pid virtiofsd || pgrep -f "source=$T/share")
		kill "$vfsd"
		for _ in $(seq 50); do grep -q 'fs0:' "$T/fs.out" && break; sleep 0.1; done
		got=$("$VMM" ctl "$T/f.sock" status)
		[[ "$got" == '{"ok":true,"state":"running",'* ]] &&
			[ "$(grep -c 'fs0:' "$T/fs.out")" = 1 ] &&
			grep -q "^vmm: fs0: virtiofsd for '$T/share': lost: it closed the connection" "$T/fs.out" &&
			ok "--share: virtiofsd killed: one line, the VM runs on" || bad "--share backend killed" "$got $(cat "$T/fs.out")"
		kill $pid
		wait_bounded $pid 20
	else
		skipped "--share" "no /usr/lib/qemu/virtiofsd (qemu-system-common)"
	fi

	# --- snapshots: chatty mode=count prints "count N" forever ----------
	S=$T/snap
	mkdir -p "$S"
	chmod 1777 "$S" # the jail writes API snapshots as nobody (and T is 0711)
	truncate -s 8M "$T/sdisk.img"
	count_run=(run -q --kernel "$G/chatty.elf" --mem 64M --cmdline mode=count --disk "path=$T/sdisk.img")
	run "$VMM" "${count_run[@]}" --snapshot-at 'count 0000000000000003' --snapshot-dir "$S/a"
	[ "$rc" = 0 ] && [ -z "$err" ] && [ -f "$S/a/state" ] && [ -f "$S/a/memory" ] &&
		ok "--snapshot-at: snapshot written, exit 0" || bad "--snapshot-at" "rc=$rc err=$err"
	last=$(grep -c '^count ' "$T/out")
	# The vCPU may print a line or two past the match before it parks.
	run timeout 20 "$VMM" restore -q "$S/a" --expect 'count 0000000000000010'
	first=$(grep -m1 '^count ' "$T/out")
	[ "$rc" = 0 ] && [ "$first" = "$(printf 'count %016x' "$last")" ] && [ -z "$err" ] &&
		ok "restore: the counter goes on with the next number" || bad "restore: counter" "rc=$rc first='$first' after $last lines err=$err"
	# Restored paused, snapshotted again: the same state but the clocks.
	rm -f "$T/r.sock"
	"$VMM" restore "$S/a" --paused --api-socket "$T/r.sock" --snapshot-dir "$S" >"$T/rp.out" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 50); do [ -S "$T/r.sock" ] && break; sleep 0.1; done
	got=$("$VMM" ctl "$T/r.sock" status)
	[[ "$got" == '{"ok":true,"state":"paused",'* ]] && ok "restore --paused: paused" || bad "restore --paused" "$got"
	got=$("$VMM" ctl "$T/r.sock" snapshot "$S/b")
	diffs=$(tests/cli/snapshot_tool.py diff "$S/a" "$S/b")
	[[ "$got" == '{"ok":true,"dir":"'"$S/b"'","size_bytes":'* ]] && [ -z "$diffs" ] && cmp -s "$S/a/memory" "$S/b/memory" &&
		ok "snapshot of a paused restore: sections identical but the clocks" || bad "paused restore snapshot" "$got $diffs"
	got=$("$VMM" ctl "$T/r.sock" snapshot "$S/b")
	[ "$got" = '{"ok":false,"error":"'"'$S/b'"' is not empty: a snapshot needs a directory of its own"}' ] &&
		ok "snapshot into a non-empty directory: refused" || bad "snapshot non-empty dir" "$got"
	got=$("$VMM" ctl "$T/r.sock" snapshot "$S/nonexistent/snap")
	st=$("$VMM" ctl "$T/r.sock" status)
	[[ "$got" == '{"ok":false,"error":"cannot create '"'$S/nonexistent/snap'"': '* ]] && [[ "$st" == '{"ok":true,"state":"paused",'* ]] &&
		ok "a snapshot that cannot be written: the VM as it was" || bad "unwritable snapshot" "$got $st"
	got=$("$VMM" ctl "$T/r.sock" resume)
	for _ in $(seq 50); do grep -q '^count 0000000000000006' "$T/rp.out" && break; sleep 0.1; done
	got=$("$VMM" ctl "$T/r.sock" snapshot "$S/c")
	st=$("$VMM" ctl "$T/r.sock" status)
	[[ "$got" == '{"ok":true,"dir":"'"$S/c"'",'* ]] && [[ "$st" == '{"ok":true,"state":"running",'* ]] &&
		ok "snapshot of a running VM: it runs on" || bad "running snapshot" "$got $st"
	kill $pid
	wait_bounded $pid 20
	run "$VMM" snapshot-info "$S/a"
	[ "$rc" = 0 ] && [ -z "$err" ] && [[ "$out" == "format 1 arch 62 vendor "*" sections 12"* ]] &&
		[ "$(grep -c ' crc32 ' "$T/out")" = 12 ] && grep -q '^vda device v1 ' "$T/out" &&
		grep -q '^cpu cpu v1 36 bytes ' "$T/out" && grep -q '^rng device v1 ' "$T/out" &&
		ok "snapshot-info: the header and twelve sections" || bad "snapshot-info" "rc=$rc $out $err"
	expect_error "snapshot-info: not a snapshot" 2 "is not a snapshot" snapshot-info "$T"
	# Bad snapshots: one line, exit 2, nothing started.
	expect_error "restore: no directory" 2 "missing the snapshot directory" restore
	expect_error "restore: directory missing" 2 "$S/none" restore "$S/none"
	expect_error "restore: not a snapshot" 2 "is not a snapshot" restore "$T"
	expect_error "restore: a machine option" 2 "--mem: not an option of restore" restore "$S/a" --mem 1G
	expect_error "run: a restore option" 2 "--paused: an option of vmm restore" run --kernel "$G/hello.elf" --paused
	expect_error "--snapshot-at without a directory" 2 "--snapshot-at needs --snapshot-dir" "${count_run[@]}" --snapshot-at x
	for bad in truncated:"truncated" flip:"section 'vcpu0': checksum mismatch" format:"format version 7, this vmm reads 1" \
		vendor:"made on a BogusVendor CPU" header:"header: checksum mismatch" \
		tsc:"TSC" features:"lacks CPU features the guest was shown: CPUID.80000001:EDX" \
		vm-features:"lacks CPU features the guest was shown: CPUID.80000001:EDX"; do
		rm -rf "$S/x" && cp -r "$S/a" "$S/x"
		case ${bad%%:*} in
		truncated) truncate -s -100 "$S/x/state" ;;
		flip) tests/cli/snapshot_tool.py flip "$S/x" vcpu0 ;;
		format) tests/cli/snapshot_tool.py set-format "$S/x" 7 ;;
		vendor) tests/cli/snapshot_tool.py set-vendor "$S/x" BogusVendor ;;
		header) printf 'X' | dd of="$S/x/state" bs=1 seek=20 conv=notrunc 2>/dev/null ;;
		tsc) tests/cli/snapshot_tool.py set-tsc "$S/x" 1 ;;
		features) tests/cli/snapshot_tool.py all-features "$S/x" ;;
		vm-features) tests/cli/snapshot_tool.py all-vm-features "$S/x" ;;
		esac
		expect_error "restore: ${bad%%:*}" 2 "${bad#*:}" restore "$S/x"
	done
	rm -rf "$S/x" && cp -r "$S/a" "$S/x" && truncate -s 1M "$S/x/memory"
	expect_error "restore: memory file of the wrong size" 2 "not the size" restore "$S/x"
	mv "$T/sdisk.img" "$T/sdisk.moved"
	expect_error "restore: disk image missing" 2 "vda: image '$T/sdisk.img'" restore "$S/a"
	cp "$T/sdisk.moved" "$T/sdisk.img"
	expect_error "restore: disk image replaced" 2 "changed after the snapshot" restore "$S/a"
	truncate -s 16M "$T/sdisk.moved"
	expect_error "restore: disk copy of another size" 2 "is 16777216 bytes, it was 8388608" restore "$S/a" --disk-copy "vda=$T/sdisk.moved"
	run timeout 20 "$VMM" restore "$S/a" -q --disk-copy "vda=$T/sdisk.img" --expect 'count 0000000000000008'
	[ "$rc" = 0 ] && [ -z "$err" ] && ok "restore --disk-copy: a copy of the image" || bad "restore --disk-copy" "rc=$rc err=$err"
	expect_error "restore --disk-copy of a disk it lacks" 2 "--disk-copy vdb: the snapshot has 1 disk" restore "$S/a" --disk-copy "vdb=$T/sdisk.img"

	# --- live migration: the count guest moves to a second vmm ----------
	M=$T/mig
	mkdir -p "$M"
	mig_src() { # start the count guest with a control socket at $M/src.sock
		rm -f "$M/src.sock"
		"$VMM" run -q --kernel "$G/chatty.elf" --mem 64M --cmdline mode=count \
			--disk "path=$T/sdisk.img" --api-socket "$M/src.sock" "$@" >"$M/src.out" 2>"$M/src.err" </dev/null &
		spid=$!
		for _ in $(seq 50); do [ -S "$M/src.sock" ] && grep -q 'count 0000000000000003' "$M/src.out" && break; sleep 0.1; done
	}
	# the status's migration state and error once it is no longer active
	mig_outcome() {
		local st
		for _ in $(seq 100); do
			st=$("$VMM" ctl "$M/src.sock" status)
			[[ "$st" == *'"state":"active"'* || "$st" == *'"state":"stopping"'* ]] || break
			sleep 0.1
		done
		python3 -c 'import json, sys; m = json.loads(sys.argv[1])["migration"]; print(m["state"] + ": " + m.get("error", ""))' "$st"
	}
	# the count goes on: a line past the one now printed
	mig_runs_on() {
		local n
		n=$(grep -c '^count ' "$M/src.out")
		for _ in $(seq 50); do [ "$(grep -c '^count ' "$M/src.out")" -gt $((n + 2)) ] && return 0; sleep 0.1; done
		return 1
	}
	mig_src
	rm -f "$M/in.sock"
	"$VMM" run -q --incoming "unix:$M/in.sock" --expect 'count 0000000000000040' --result "json:$M/dst.json" \
		>"$M/dst.out" 2>"$M/dst.err" </dev/null &
	dpid=$!
	for _ in $(seq 50); do [ -S "$M/in.sock" ] && break; sleep 0.1; done
	got=$("$VMM" ctl "$M/src.sock" migrate "unix:$M/in.sock" downtime_ms=100)
	[ "$got" = '{"ok":true,"migration":"started","target":"unix:'"$M"'/in.sock"}' ] &&
		ok "migrate: started, answered at once" || bad "migrate: reply" "$got"
	wait_bounded $spid 20
	src_rc=$?
	# (the destination counts on to 0x40: over 20 s on a loaded host)
	wait_bounded $dpid 90
	dst_rc=$?
	last=$(grep -c '^count ' "$M/src.out")
	first=$(grep -m1 '^count ' "$M/dst.out")
	[ "$src_rc" = 0 ] && [ ! -s "$M/src.err" ] && [ ! -e "$M/src.sock" ] &&
		ok "migrate: the source exits 0, quietly" || bad "migrate: source" "rc=$src_rc $(cat "$M/src.err")"
	[ "$dst_rc" = 0 ] && [ "$first" = "$(printf 'count %016x' "$last")" ] && [ ! -s "$M/dst.err" ] &&
		[ "$(json_field "$M/dst.json" outcome)" = expect ] &&
		ok "migrate: the destination goes on with the next count (disk lock handed over)" ||
		bad "migrate: destination" "rc=$dst_rc first='$first' after $last lines, $(cat "$M/dst.err")"

	# RAM above 4G larger than below it: two regions, the larger second
	rm -f "$M/b.sock" "$M/in.sock"
	"$VMM" run -q --kernel "$G/chatty.elf" --mem 8G --cmdline mode=count --api-socket "$M/b.sock" \
		>"$M/b.out" 2>&1 </dev/null &
	bpid=$!
	"$VMM" run -q --incoming "unix:$M/in.sock" --expect 'count 0000000000000040' >"$M/bd.out" 2>&1 </dev/null &
	dpid=$!
	for _ in $(seq 50); do [ -S "$M/in.sock" ] && [ -S "$M/b.sock" ] && break; sleep 0.1; done
	got=$(timeout 10 "$VMM" ctl "$M/b.sock" migrate "unix:$M/in.sock")
	wait_bounded $bpid 30
	src_rc=$?
	wait_bounded $dpid 90
	dst_rc=$?
	[ "$src_rc" = 0 ] && [ "$dst_rc" = 0 ] && ok "migrate: an 8G guest (RAM on both sides of the 32-bit hole)" ||
		bad "migrate: 8G guest" "$got rc=$src_rc/$dst_rc $(cat "$M/b.out" "$M/bd.out")"

	# A guest halted for good: the source never waits on its vCPU (a
	# vCPU ioctl from the I/O thread would, for ever: it took the hello's
	# TSC rate that way once)
	rm -f "$M/h.sock" "$M/in.sock"
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --api-socket "$M/h.sock" >"$M/h.out" 2>&1 </dev/null &
	hpid=$!
	"$VMM" run -q --incoming "unix:$M/in.sock" --timeout 3 >"$M/hd.out" 2>&1 </dev/null &
	dpid=$!
	for _ in $(seq 50); do [ -S "$M/in.sock" ] && grep -q halting "$M/h.out" && break; sleep 0.1; done
	got=$(timeout 10 "$VMM" ctl "$M/h.sock" migrate "unix:$M/in.sock")
	wait_bounded $hpid 20
	src_rc=$?
	wait_bounded $dpid 20
	dst_rc=$?
	[ "$src_rc" = 0 ] && [ "$dst_rc" = 124 ] && ok "migrate: a halted guest moves (and halts on at the destination until --timeout)" ||
		bad "migrate: halted guest" "$got rc=$src_rc/$dst_rc $(cat "$M/h.out" "$M/hd.out")"

	# local: the shared RAM handed over as memfds to a new vmm process
	mig_src --mem-shared
	rm -f "$M/in.sock"
	"$VMM" run -q --incoming "local:$M/in.sock" --expect 'count 0000000000000040' \
		>"$M/dst.out" 2>"$M/dst.err" </dev/null &
	dpid=$!
	for _ in $(seq 50); do [ -S "$M/in.sock" ] && break; sleep 0.1; done
	got=$("$VMM" ctl "$M/src.sock" migrate "local:$M/in.sock")
	wait_bounded $spid 20
	src_rc=$?
	wait_bounded $dpid 90
	dst_rc=$?
	last=$(grep -c '^count ' "$M/src.out")
	first=$(grep -m1 '^count ' "$M/dst.out")
	[ "$src_rc" = 0 ] && [ "$dst_rc" = 0 ] && [ "$first" = "$(printf 'count %016x' "$last")" ] &&
		[ ! -s "$M/src.err" ] && [ ! -s "$M/dst.err" ] &&
		ok "migrate local: the new vmm goes on with the next count" ||
		bad "migrate local:" "$got rc=$src_rc/$dst_rc first='$first' after $last, $(cat "$M/src.err" "$M/dst.err")"

	# Failures: the guest runs on at the source, which says why.
	mig_src
	got=$("$VMM" ctl "$M/src.sock" migrate "local:$M/in.sock")
	[ "$got" = '{"ok":false,"error":"local: hands guest RAM over as memfds: start the VM with --mem-shared"}' ] &&
		ok "migrate local: without --mem-shared: refused" || bad "migrate local: not shared" "$got"
	got=$("$VMM" ctl "$M/src.sock" migrate "unix:$M/nobody.sock")
	[ "$(mig_outcome)" = "failed: cannot connect: No such file or directory" ] && mig_runs_on &&
		ok "migrate to nobody: failed, the guest runs on" || bad "migrate to nobody" "$got $(mig_outcome)"
	tests/cli/mig_peer.py refuse "$M/peer.sock" &
	ppid=$!
	for _ in $(seq 50); do [ -S "$M/peer.sock" ] && break; sleep 0.1; done
	"$VMM" ctl "$M/src.sock" migrate "unix:$M/peer.sock" >/dev/null
	[ "$(mig_outcome)" = "failed: the destination refused: no room for this guest" ] && mig_runs_on &&
		ok "migrate: a refusal is said, the guest runs on" || bad "migrate: refused" "$(mig_outcome)"
	wait $ppid
	# A guest shown CPU features the destination's KVM lacks: refused at
	# the hello, before any page moves (a relay makes the features up)
	rm -f "$M/in.sock"
	"$VMM" run --incoming "unix:$M/in.sock" >"$M/cd.out" 2>"$M/cd.err" </dev/null &
	dpid=$!
	tests/cli/mig_peer.py cpurelay "$M/peer.sock" "$M/in.sock" &
	ppid=$!
	for _ in $(seq 50); do [ -S "$M/peer.sock" ] && [ -S "$M/in.sock" ] && break; sleep 0.1; done
	"$VMM" ctl "$M/src.sock" migrate "unix:$M/peer.sock" >/dev/null
	got=$(mig_outcome)
	wait_bounded $dpid 20
	dst_rc=$?
	wait $ppid
	lacks="this host's KVM lacks CPU features the guest was shown: CPUID.80000001:EDX bits 0x"
	[[ "$got" == "failed: the destination refused: $lacks"* ]] && mig_runs_on && [ "$dst_rc" = 2 ] &&
		[[ "$(cat "$M/cd.err")" == "vmm: incoming: $lacks"* ]] && [ "$(wc -l <"$M/cd.err")" = 1 ] &&
		[ ! -e "$M/in.sock" ] &&
		ok "migrate: CPU features the destination lacks: refused at the hello, the guest runs on" ||
		bad "migrate: CPU features" "$got rc=$dst_rc $(cat "$M/cd.err")"
	# A destination stopped mid-copy: 128+N and one line; the source is
	# told and runs on (a relay holds the copy back)
	rm -f "$M/in.sock"
	"$VMM" run --incoming "unix:$M/in.sock" >"$M/cd.out" 2>"$M/cd.err" </dev/null &
	dpid=$!
	tests/cli/mig_peer.py holdrelay "$M/peer.sock" "$M/in.sock" >"$M/relay.out" &
	ppid=$!
	for _ in $(seq 50); do [ -S "$M/peer.sock" ] && [ -S "$M/in.sock" ] && break; sleep 0.1; done
	"$VMM" ctl "$M/src.sock" migrate "unix:$M/peer.sock" >/dev/null
	for _ in $(seq 50); do grep -q held "$M/relay.out" && break; sleep 0.1; done
	kill -TERM $dpid
	wait_bounded $dpid 20
	dst_rc=$?
	got=$(mig_outcome)
	wait $ppid
	[ "$dst_rc" = 143 ] && [ "$(cat "$M/cd.err")" = "vmm: incoming: stopped by SIGTERM" ] &&
		[ "$got" = "failed: the destination failed: the destination was stopped" ] && mig_runs_on &&
		ok "--incoming stopped mid-copy: exit 143, one line; the source runs on" ||
		bad "--incoming stopped mid-copy" "rc=$dst_rc $got $(cat "$M/cd.err")"
	tests/cli/mig_peer.py stall "$M/peer.sock" &
	ppid=$!
	for _ in $(seq 50); do [ -S "$M/peer.sock" ] && break; sleep 0.1; done
	"$VMM" ctl "$M/src.sock" migrate "unix:$M/peer.sock" >/dev/null
	sleep 0.5
	got=$("$VMM" ctl "$M/src.sock" migrate-cancel)
	[ "$got" = '{"ok":true,"migration":"cancelling"}' ] && [ "$(mig_outcome)" = "cancelled: cancelled" ] && mig_runs_on &&
		ok "migrate-cancel: cancelled, the guest runs on" || bad "migrate-cancel" "$got $(mig_outcome)"
	wait $ppid
	tests/cli/mig_peer.py stall "$M/peer.sock" &
	ppid=$!
	for _ in $(seq 50); do [ -S "$M/peer.sock" ] && break; sleep 0.1; done
	"$VMM" ctl "$M/src.sock" migrate "unix:$M/peer.sock" timeout_s=1 >/dev/null
	[ "$(mig_outcome)" = "failed: not done within timeout_s=1" ] && mig_runs_on &&
		ok "migrate timeout_s=1 to a peer that never answers: failed, the guest runs on" ||
		bad "migrate timeout" "$(mig_outcome)"
	wait $ppid
	got=$("$VMM" ctl "$M/src.sock" migrate-cancel)
	[ "$got" = '{"ok":false,"error":"no migration is under way"}' ] && ok "migrate-cancel with none: refused" || bad "migrate-cancel, none" "$got"
	got=$("$VMM" ctl "$M/src.sock" migrate "unix:$M/x.sock" downtime_ms=0)
	[ "$got" = '{"ok":false,"error":"migrate: '"'downtime_ms=0'"' is not downtime_ms=N or timeout_s=N (N > 0)"}' ] &&
		ok "migrate: a bad parameter is refused" || bad "migrate: bad parameter" "$got"
	kill $spid
	wait_bounded $spid 20
	# stderr of the source: one line per failure, and the SIGTERM's
	[ "$(grep -c 'the guest runs on here' "$M/src.err")" = 6 ] && [ "$(wc -l <"$M/src.err")" = 7 ] &&
		ok "migrate failures: one line each at the source" || bad "migrate failure lines" "$(cat "$M/src.err")"
	# A destination fed a bad stream: one line, nothing started.
	for bad in garbage:"not a migration stream" badhello:"header"; do
		rm -f "$M/in.sock"
		tests/cli/mig_peer.py "${bad%%:*}" "$M/in.sock" &
		ppid=$!
		run timeout 20 "$VMM" run --incoming "unix:$M/in.sock"
		wait $ppid
		[ "$rc" = 2 ] && [ "$nerr" = 1 ] && [[ "$err" == *"${bad#*:}"* ]] && [ ! -e "$M/in.sock" ] &&
			ok "--incoming: a ${bad%%:*} stream: one line, exit 2" || bad "--incoming ${bad%%:*}" "rc=$rc $err"
	done
	run timeout 20 "$VMM" run --incoming "unix:$M/in.sock" --timeout 0.5
	[ "$rc" = 1 ] && [ "$err" = "vmm: incoming: no source connected within --timeout" ] && [ ! -e "$M/in.sock" ] &&
		ok "--incoming --timeout: nobody came, exit 1" || bad "--incoming --timeout" "rc=$rc $err"
	rm -f "$M/in.sock"
	"$VMM" run --incoming "unix:$M/in.sock" >/dev/null 2>"$M/cd.err" </dev/null &
	dpid=$!
	for _ in $(seq 50); do [ -S "$M/in.sock" ] && break; sleep 0.1; done
	kill -INT $dpid
	wait_bounded $dpid 20
	dst_rc=$?
	[ "$dst_rc" = 130 ] && [ "$(cat "$M/cd.err")" = "vmm: incoming: stopped by SIGINT while waiting for the source" ] &&
		[ ! -e "$M/in.sock" ] && ok "--incoming: Ctrl-C while it waits: exit 130, one line" ||
		bad "--incoming Ctrl-C" "rc=$dst_rc $(cat "$M/cd.err")"
	# shellcheck source=tests/cli/test_jail.sh
	. tests/cli/test_jail.sh
else
	skipped "boot cases" "/dev/kvm is not usable here (the lab runs vmm on a real KVM)"
fi
expect_error "--incoming: not an address" 2 "--incoming: '/tmp/x' is not unix:PATH, local:PATH or tcp:HOST:PORT" run --incoming /tmp/x
expect_error "--incoming: a machine option" 2 "--mem: not an option of run --incoming" run --incoming unix:/tmp/x --mem 1G
expect_error "--incoming --no-rng" 2 "--no-rng: not an option of run --incoming" run --incoming unix:/tmp/x --no-rng
expect_error "restore --append" 2 "--append: not an option of restore" restore /tmp --append x=1
expect_error "--append empty" 2 "--append: empty" run --kernel "$G/hello.elf" --append ""
expect_error "--append twice" 2 "--append: given twice" run --kernel "$G/hello.elf" --append a --append b
expect_error "--vsock: host CID" 2 "--vsock: cid='2' is not a number from 3 to 4294967294" run --kernel "$G/hello.elf" --vsock cid=2,socket=/tmp/v
expect_error "--vsock: no socket" 2 "--vsock: socket=PATH is missing" run --kernel "$G/hello.elf" --vsock cid=3
expect_error "--vsock: unknown key" 2 "--vsock: unknown key 'port'" run --kernel "$G/hello.elf" --vsock cid=3,socket=/tmp/v,port=1
expect_error "--vsock: twice" 2 "--vsock: given twice" run --kernel "$G/hello.elf" --vsock cid=3,socket=/tmp/v --vsock cid=4,socket=/tmp/w
expect_error "--vsock: a long path" 2 "too long for a socket path" run --kernel "$G/hello.elf" --vsock "cid=3,socket=/tmp/$(printf 'x%.0s' $(seq 100))"
expect_error "--mem: another key" 2 "--mem: '64M,huge=1': after the size, only shared=on or shared=off" run --kernel "$G/hello.elf" --mem 64M,huge=1
expect_error "--share with shared=off" 2 "--mem ...,shared=off: --share and --fs need shared memory" run --kernel "$G/hello.elf" --mem 64M,shared=off --share /tmp
expect_error "--share: no folder" 2 "--share: HOSTDIR is missing" run --kernel "$G/hello.elf" --share ,tag=x
expect_error "--share: empty tag" 2 "--share: tag='' is not 1 to 36 bytes" run --kernel "$G/hello.elf" --share /tmp,tag=
expect_error "--share: long tag" 2 "is not 1 to 36 bytes" run --kernel "$G/hello.elf" --share "/tmp,tag=$(printf 't%.0s' $(seq 37))"
expect_error "--share: unknown key" 2 "--share: unknown key 'color'" run --kernel "$G/hello.elf" --share /tmp,color=red
expect_error "--share: readonly=maybe" 2 "--share: readonly='maybe' is not on or off" run --kernel "$G/hello.elf" --share /tmp,readonly=maybe
expect_error "--share: /" 2 "--share: '/' has no name to use as its tag: give tag=NAME" run --kernel "$G/hello.elf" --share /
expect_error "--share: a tag twice" 2 "--share: tag 'tmp' is given twice" run --kernel "$G/hello.elf" --share /tmp --share /var/tmp
expect_error "--share: five" 2 "at most 4 shared folders" run --kernel "$G/hello.elf" --share /a,tag=1 --share /a,tag=2 --share /a,tag=3 --share /a,tag=4 --share /a,tag=5
expect_error "--fs: no socket" 2 "--fs: socket=PATH is missing" run --kernel "$G/hello.elf" --fs tag=x
expect_error "--fs: no tag" 2 "--fs: tag=NAME is missing" run --kernel "$G/hello.elf" --fs socket=/tmp/x
expect_error "--fs: readonly" 2 "--fs: unknown key 'readonly'" run --kernel "$G/hello.elf" --fs tag=x,socket=/tmp/x,readonly=on
expect_error "restore --incoming" 2 "--incoming: an option of run, not of restore" restore /tmp --incoming unix:/tmp/x
expect_error "ctl migrate: not an address" 2 "ctl: migrate: 'tcp:nohost' is not tcp:HOST:PORT" ctl /tmp/none.sock migrate tcp:nohost

echo "cli: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]

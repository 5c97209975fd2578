# shellcheck shell=bash
# The jail (include/jail.h), on this host's /dev/kvm with the tiny guests.
# Sourced by test_cli.sh inside its boot block: uses run, ok, bad,
# skipped, wait_bounded, $VMM, $G, $T.
# shellcheck disable=SC2015  # cond && ok || bad: ok never fails
# shellcheck disable=SC2154  # rc, err: set by run() in test_cli.sh

# jail_status PID FIELD: a field of /proc/PID/status, tabs as spaces
jail_status() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr '\t' ' ' | sed 's/ *$//'; }

# jail_wait PID: until vmm PID is jailed (its uid changed), at most 5 s
jail_wait() {
	for _ in $(seq 50); do
		[ "$(jail_status "$1" Uid)" = "65534 65534 65534 65534" ] && return 0
		sleep 0.1
	done
	return 1
}

J=$T/jail
mkdir -p "$J"
if [ "$(id -u)" != 0 ] || ! getent passwd nobody >/dev/null; then
	skipped "jail as root" "needs root and a user nobody"
else
	# A running jailed vmm: what /proc says of it.
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --result "json:$J/r.json" >"$J/out" 2>"$J/err" </dev/null &
	pid=$!
	why=
	jail_wait $pid || why+=" not jailed within 5 s;"
	[ "$(jail_status $pid Uid)" = "65534 65534 65534 65534" ] || why+=" Uid=$(jail_status $pid Uid)"
	[ "$(jail_status $pid Gid)" = "65534 65534 65534 65534" ] || why+=" Gid=$(jail_status $pid Gid)"
	[ "$(jail_status $pid Groups)" = "65534" ] || why+=" Groups=$(jail_status $pid Groups)"
	for c in CapInh CapPrm CapEff CapBnd CapAmb; do
		[ "$(jail_status $pid $c)" = 0000000000000000 ] || why+=" $c=$(jail_status $pid $c)"
	done
	[ "$(jail_status $pid NoNewPrivs)" = 1 ] || why+=" NoNewPrivs=$(jail_status $pid NoNewPrivs)"
	case $VMM in *asan*) want_sc=0 ;; *) want_sc=2 ;; esac # sanitizer builds load no filter
	[ "$(jail_status $pid Seccomp)" = $want_sc ] || why+=" Seccomp=$(jail_status $pid Seccomp)"
	for ns in mnt net ipc uts; do
		[ "$(readlink /proc/$pid/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] || why+=" ns/$ns shared"
	done
	seen=$(find "/proc/$pid/root/" -mindepth 1 -maxdepth 1 -printf '%f ') || why+=" its root unreadable"
	case $VMM in *asan*) want_seen="proc " ;; *) want_seen= ;; esac # its leak checker's
	[ "$seen" = "$want_seen" ] || why+=" sees: $seen"
	[ -z "$why" ] && ok "jail: nobody, no capabilities, no_new_privs, seccomp, own namespaces, an empty root" ||
		bad "jail: /proc of a jailed vmm" "$why"
	kill -TERM $pid
	wait_bounded $pid 20
	rc=$?
	[ "$rc" = 143 ] && [ "$(stat -c %U "$J/r.json" 2>/dev/null)" = root ] &&
		[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$J/r.json")" = 143 ] &&
		[ "$(ls "$J")" = "err
out
r.json" ] && ok "jail: stopped, the result in place in a 0700 directory of root's, no file left" ||
		bad "jail: result" "rc=$rc $(ls -l "$J") $(cat "$J/err")"

	# Each wall on its own (--no-seccomp): the probes are refused.
	planted=$(mktemp /root/vmm-jail-planted.XXXXXX)
	run env VMM_TEST_JAIL="open:$planted" "$VMM" run -q --no-seccomp --kernel "$G/hello.elf" --mem 16M
	[ "$rc" = 0 ] && [ "$err" = "vmm: jail probe open:$planted: refused (No such file or directory)" ] &&
		ok "jail: a file under /root is not even there" || bad "jail: open probe" "rc=$rc $err"
	rm -f "$planted"
	# Landlock alone: a file nobody may read, in a run that keeps the
	# host's file view (--api-socket), in a kernel that has Landlock.
	echo secret >"$J/planted" && chmod 644 "$J/planted"
	run env VMM_TEST_JAIL="open:$J/planted" "$VMM" run -v --no-seccomp --kernel "$G/hello.elf" --mem 16M \
		--api-socket "$J/a.sock"
	if grep -q 'Landlock ABI 0$' "$T/err"; then
		skipped "jail: Landlock" "this kernel has no Landlock"
	else
		grep -q "^vmm: jail probe open:$J/planted: refused (Permission denied)$" "$T/err" && [ "$rc" = 0 ] &&
			ok "jail: Landlock refuses a file nobody could read" || bad "jail: Landlock probe" "rc=$rc $err"
	fi
	run env VMM_TEST_JAIL="open:$J/planted" "$VMM" run -q --no-seccomp --no-jail --kernel "$G/hello.elf" --mem 16M
	[ "$err" = "vmm: jail probe open:$J/planted: allowed" ] && ok "jail: --no-jail: the same file opens" ||
		bad "jail: --no-jail open" "rc=$rc $err"
	python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$J/port" &
	lpid=$!
	for _ in $(seq 50); do [ -s "$J/port" ] && break; sleep 0.1; done
	port=$(cat "$J/port")
	run env VMM_TEST_JAIL="connect:$port" "$VMM" run -q --no-seccomp --kernel "$G/hello.elf" --mem 16M
	[ "$rc" = 0 ] && [ "$err" = "vmm: jail probe connect:$port: refused (Network is unreachable)" ] &&
		ok "jail: no host network" || bad "jail: connect probe" "rc=$rc $err"
	run env VMM_TEST_JAIL="connect:$port" "$VMM" run -q --no-seccomp --no-jail --kernel "$G/hello.elf" --mem 16M
	[ "$err" = "vmm: jail probe connect:$port: allowed" ] && ok "jail: --no-jail: the port answers" ||
		bad "jail: --no-jail connect" "rc=$rc $err"
	kill $lpid 2>/dev/null
	wait $lpid 2>/dev/null
	run env VMM_TEST_JAIL=setuid "$VMM" run -q --no-seccomp --kernel "$G/hello.elf" --mem 16M
	[ "$rc" = 0 ] && [ "$err" = "vmm: jail probe setuid: refused (Operation not permitted)" ] &&
		ok "jail: root cannot be had back" || bad "jail: setuid probe" "rc=$rc $err"

	# --user, and the snapshot directory it must be able to write.
	run "$VMM" run -v --kernel "$G/hello.elf" --mem 16M --user daemon
	[ "$rc" = 0 ] && grep -q "^vmm: jail: uid $(id -u daemon) gid $(id -g daemon) (dropped from root);" "$T/err" &&
		ok "jail: --user daemon" || bad "jail: --user" "rc=$rc $err"
	expect_error "jail: --user nosuch" 2 "--user: no such user 'nosuch-vmm'" run --kernel "$G/hello.elf" --user nosuch-vmm
	expect_error "jail: --user root" 2 "--user: 'root' is root" run --kernel "$G/hello.elf" --user root
	expect_error "jail: --user with --no-jail" 2 "--user: not with --no-jail" run --kernel "$G/hello.elf" --user daemon --no-jail
	mkdir -p "$J/private" && chmod 700 "$J/private"
	expect_error "jail: a snapshot directory nobody cannot write" 2 \
		"--snapshot-dir: user nobody cannot write '$J/private'" \
		run --kernel "$G/hello.elf" --snapshot-at x --snapshot-dir "$J/private"
	[ -z "$(ls "$J/private")" ] && ok "jail: ... and nothing was written" || bad "jail: private" "$(ls "$J/private")"
	# A relative --snapshot-dir, from another working directory: the jail
	# moves vmm's, the snapshot lands where the user meant.
	run sh -c 'cd "$1" && exec "$2" run -q --kernel "$3" --mem 64M --cmdline mode=count \
		--snapshot-at "count 0000000000000003" --snapshot-dir rel' sh "$J" "$PWD/$VMM" "$PWD/$G/chatty.elf"
	[ "$rc" = 0 ] && [ -f "$J/rel/state" ] && [ -f "$J/rel/memory" ] &&
		ok "jail: a relative --snapshot-dir" || bad "jail: relative --snapshot-dir" "rc=$rc $err $(ls "$J")"
	# A --snapshot-dir vmm makes is nobody's, and goes if nothing was written.
	run "$VMM" run -q --kernel "$G/hello.elf" --mem 16M --snapshot-at never --snapshot-dir "$J/new"
	[ "$rc" = 0 ] && [ ! -e "$J/new" ] && ok "jail: an unused snapshot directory is removed" ||
		bad "jail: unused snapshot dir" "rc=$rc $(ls -ld "$J/new" 2>&1)"
	# API snapshots: beneath --snapshot-dir only.
	rm -f "$J/s.sock"
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --api-socket "$J/s.sock" --snapshot-dir "$J/snaps" \
		>"$J/s.out" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 50); do [ -S "$J/s.sock" ] && grep -q halting "$J/s.out" && break; sleep 0.1; done
	got=$("$VMM" ctl "$J/s.sock" snapshot "$J/elsewhere")
	[ "$got" = '{"ok":false,"error":"snapshot: '"'$J/elsewhere'"' is not beneath --snapshot-dir '"'$J/snaps'"' (the jail'"'"'s)"}' ] &&
		[ ! -e "$J/elsewhere" ] && ok "jail: an API snapshot outside --snapshot-dir: refused" || bad "jail: snapshot outside" "$got"
	got=$("$VMM" ctl "$J/s.sock" snapshot "$J/snaps/one")
	[[ "$got" == '{"ok":true,"dir":"'"$J/snaps/one"'",'* ]] && [ "$(stat -c %U "$J/snaps/one/state")" = nobody ] &&
		ok "jail: an API snapshot beneath it: written, by nobody" || bad "jail: snapshot beneath" "$got"
	kill $pid
	wait_bounded $pid 20
	[ ! -e "$J/s.sock" ] && ok "jail: the API socket is removed at exit" || bad "jail: API socket left" "$(ls "$J")"
	rm -f "$J/s.sock"
	"$VMM" run -q --kernel "$G/hang.elf" --mem 16M --api-socket "$J/s.sock" >"$J/s.out" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 50); do [ -S "$J/s.sock" ] && grep -q halting "$J/s.out" && break; sleep 0.1; done
	got=$("$VMM" ctl "$J/s.sock" snapshot "$J/snaps/two")
	[ "$got" = '{"ok":false,"error":"snapshot: the jail lets this vmm write nowhere: start it with --snapshot-dir DIR (or --no-jail)"}' ] &&
		ok "jail: no --snapshot-dir, no API snapshot" || bad "jail: snapshot without area" "$got"
	kill $pid
	wait_bounded $pid 20
fi

# An ordinary user: the walls it can raise without privilege. /dev/kvm
# here is root's: a copy of its node that nobody may open is bound over
# it in a mount namespace of the test's own (the host's stays as it is).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && command -v unshare >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$VMM" -a -r "$G/hello.elf" &&
	kvm_dev=$(stat -c '%t %T' /dev/kvm) && mknod "$J/kvm" c "$((16#${kvm_dev% *}))" "$((16#${kvm_dev#* }))" 2>/dev/null &&
	chmod 666 "$J/kvm"; then
	# shellcheck disable=SC2016  # the inner shell expands its own arguments
	run unshare -m sh -c 'mount --bind "$1" /dev/kvm && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$2" run -v --kernel "$3/hello.elf" --mem 16M' \
		sh "$J/kvm" "$VMM" "$G"
	line=$(grep '^vmm: jail: ' "$T/err")
	if [ "$rc" = 0 ] && [[ "$line" == "vmm: jail: uid 65534 gid 65534; namespaces: user mnt ipc uts net; file system: reduced; Landlock ABI "* ]]; then
		ok "jail: as nobody, through a user namespace"
	elif [ "$rc" = 0 ] && grep -q '^vmm: jail: no user namespace for an unprivileged vmm here' "$T/err"; then
		skipped "jail: as nobody" "this host allows no unprivileged user namespace"
	else
		bad "jail: as nobody" "rc=$rc $err"
	fi
else
	skipped "jail: as nobody" "needs root, setpriv, unshare and a device node of /dev/kvm"
fi

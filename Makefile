# vmm: see README.md. `make` builds build/vmm; `make test` runs every tier.
CC      ?= gcc
BUILD   := build
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wformat-security -Wvla \
           -Wpointer-arith -Wcast-align -Wundef
XCFLAGS = -std=gnu11 -D_GNU_SOURCE -Iinclude $(WARN) -MMD -MP \
           -fno-strict-aliasing $(SONAMES)
LDLIBS  := -luring -laio -lseccomp -ljansson -lz -lpthread
TEST_LIBS := -llzma -lzstd -lnettle # unit tests make payloads and hash them
# liblzma, libzstd and nettle are opened only while vmm sets up (dynlib.h):
# their sonames, from the development links the headers came with
soname   = $(or $(shell objdump -p "$$($(CC) -print-file-name=lib$(1).so)" 2>/dev/null | \
                 awk '$$1 == "SONAME" { print $$2 }'),$(2))
SONAMES := -DLZMA_SONAME='"$(call soname,lzma,liblzma.so.5)"' \
           -DZSTD_SONAME='"$(call soname,zstd,libzstd.so.1)"' \
           -DNETTLE_SONAME='"$(call soname,nettle,libnettle.so.8)"'

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
MAIN_SRC := src/main.c
UNIT_SRC := $(wildcard tests/unit/test_*.c)

LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ_ASAN := $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
UNIT_BIN      := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_BIN_ASAN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests-asan/%)

.PHONY: all asan unit guests test test-unit test-guests test-lab demo bench \
        deps format clean fuzz fuzz-build fuzz-regress fuzz-clean \
        check-calls format-check shellcheck rootfs
all: $(BUILD)/vmm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/vmm: $(LIB_OBJ) $(BUILD)/obj/src/main.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/vmm-asan: $(LIB_OBJ_ASAN) $(BUILD)/asan/src/main.o
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)
asan: $(BUILD)/vmm-asan

# Unit tests (cmocka, no KVM), plain and sanitized.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LIBS) -lcmocka $(WRAP)
$(BUILD)/tests-asan/%: $(BUILD)/asan/tests/unit/%.o $(LIB_OBJ_ASAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) $(TEST_LIBS) -lcmocka $(WRAP)
# The PCI device tests (virtio-pci, VFIO: no VFIO, the device is a file)
# and fuzzers replace the KVM plumbing with one fake (tests/unit/fake_kvm.c).
FAKE_KVM_WRAP := $(foreach f,irq_msi_alloc irq_msi_set irq_irqfd irq_irqfd_resample \
                   irq_ioeventfd irq_set_line pci_set_memslot,-Wl,--wrap=$(f))
$(BUILD)/tests/test_virtio_pci $(BUILD)/tests/test_vfio: $(BUILD)/obj/tests/unit/fake_kvm.o
$(BUILD)/tests-asan/test_virtio_pci $(BUILD)/tests-asan/test_vfio: \
  $(BUILD)/asan/tests/unit/fake_kvm.o
$(BUILD)/tests/test_virtio_pci $(BUILD)/tests-asan/test_virtio_pci \
$(BUILD)/tests/test_vfio $(BUILD)/tests-asan/test_vfio: WRAP := $(FAKE_KVM_WRAP)
# The blk test makes the disk engines' waits fail on demand (a failing drain).
$(BUILD)/tests/test_blk $(BUILD)/tests-asan/test_blk: \
  WRAP := $(foreach f,io_uring_submit_and_wait __io_uring_get_cqe io_getevents,-Wl,--wrap=$(f))
unit: $(UNIT_BIN) $(UNIT_BIN_ASAN)

# Tiny freestanding guests (ELF64, entered in long mode by vmm).
GUEST_SRC   := $(wildcard guests/*.c)
GUEST_BIN   := $(GUEST_SRC:guests/%.c=$(BUILD)/guests/%.elf)
GUEST_CFLAGS := -std=gnu11 -O2 -ffreestanding -fno-pic -fno-pie -nostdlib \
                -mno-red-zone -mgeneral-regs-only -fno-stack-protector \
                -fno-asynchronous-unwind-tables -Wall -Wextra \
                -Werror -Iguests
$(BUILD)/guests/%.elf: guests/%.c guests/start.S guests/guest.h guests/ap.h guests/guest.ld
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -mcmodel=small -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
	  -T guests/guest.ld -o $@ guests/start.S $<
guests: $(GUEST_BIN)

deps:
	@scripts/deps.sh

test: deps
	@scripts/run-tests.sh

test-unit: all unit
	@scripts/run-tests.sh unit
test-guests: all asan guests
	@scripts/run-tests.sh guests
test-lab: all
	@scripts/run-tests.sh lab

demo: deps all
	@scripts/demo.sh

bench: deps all guests $(BUILD)/blkbench
	@scripts/bench.sh

# A bootable Debian 12 disk for vmm from Debian's packages (mmdebstrap, as
# root): build/rootfs/debian.img, vmlinuz, initrd.img. `make clean` keeps
# them. ROOTFS_FLAGS: scripts/mkrootfs's options (--size 4G, --password PW).
rootfs:
	@scripts/mkrootfs $(ROOTFS_FLAGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Structural checks. check-calls: no ring of calls between src/ files (read
# from the objects) and no src/ file over CHECK_MAX_LINES lines.
CHECK_MAX_LINES ?= 600
check-calls: $(LIB_OBJ) $(BUILD)/obj/src/main.o
	@scripts/check-calls --max-lines $(CHECK_MAX_LINES) $(BUILD)

# Names the files `make format` would change (clang-format --dry-run FILE
# shows how); files in the index but gone from the tree are left out.
format-check:
	@files=$$(git ls-files '*.c' '*.h') || exit 1; n=0 bad=0; \
	for f in $$files; do \
	  [ -f "$$f" ] || continue; n=$$((n + 1)); \
	  clang-format --dry-run --Werror "$$f" >/dev/null 2>&1 || \
	    { echo "$$f: not formatted"; bad=$$((bad + 1)); }; \
	done; \
	echo "format-check: $$bad of $$n files not formatted (make format)"; \
	[ $$bad = 0 ]

# Every shell script: a #! line naming sh or bash, or, for the files that
# are only sourced, a "# shellcheck shell=" line first. -x follows their
# "# shellcheck source=" lines (paths from here, the top of the tree).
SH_SCRIPTS = $(shell awk 'FNR == 1 && /^(\#!.*[/ ](ba)?sh( |$$)|\# shellcheck shell=)/ \
               { print FILENAME }' $$(find scripts tests .ci -path tests/fuzz/corpus \
               -prune -o -type f -print) | sort)
shellcheck:
	shellcheck -x $(SH_SCRIPTS)

clean:
	rm -rf $(BUILD)/obj $(BUILD)/asan $(BUILD)/tests $(BUILD)/tests-asan \
	  $(BUILD)/guests $(BUILD)/vmm $(BUILD)/vmm-asan $(BUILD)/blkbench

-include $(shell find $(BUILD)/obj $(BUILD)/asan -name '*.d' 2>/dev/null)

# Guest tests: tiny guests on /dev/kvm through the library (plain and ASan).
$(BUILD)/tests/guest_tests: $(BUILD)/obj/tests/guest/guest_tests.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(BUILD)/tests-asan/guest_tests: $(BUILD)/asan/tests/guest/guest_tests.o $(LIB_OBJ_ASAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka

# Host-side virtio-blk benchmark (make bench): the device over a file, no VM.
$(BUILD)/blkbench: $(BUILD)/obj/bench/blkbench.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (tests/fuzz/, see its README): clang with ASan and
# UBSan, the library compiled again with clang into build/fuzz/obj.
# `make fuzz` runs each target FUZZ_SECONDS; `make fuzz-regress` runs each
# over its committed corpus only (`make test` does that, plus a little).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_OBJ     := $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
# clang's -Wcast-align also fires where x86 does not care (gcc's is silent
# there), and it calls a header-then-payload struct a GNU extension.
FUZZ_WARN    := $(filter-out -Wcast-align,$(WARN)) -Wno-gnu-variable-sized-type-not-at-end
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -Iinclude $(FUZZ_WARN) -MMD -MP $(SONAMES) \
                -fno-strict-aliasing -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) $(FUZZ_WRAP)
# The PCI targets replace the KVM plumbing with the unit tests' fake.
$(BUILD)/fuzz/fuzz_virtio_pci $(BUILD)/fuzz/fuzz_vfio_pci: \
  $(BUILD)/fuzz/obj/tests/unit/fake_kvm.o
$(BUILD)/fuzz/fuzz_virtio_pci $(BUILD)/fuzz/fuzz_vfio_pci: FUZZ_WRAP := $(FAKE_KVM_WRAP)

# Objects stay (make would delete them as intermediates of the pattern rules).
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_NAMES:%=$(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o)

fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@FUZZ_FLAGS='$(FUZZ_FLAGS)' tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)
fuzz-regress: fuzz-build
	@tests/fuzz/run.sh regress 0 $(FUZZ_NAMES)
fuzz-clean:
	rm -rf $(BUILD)/fuzz

-include $(shell find $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)

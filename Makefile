# vmm: see README.md. `make` builds build/vmm; `make test` runs every tier.
CC      ?= gcc
BUILD   := build
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wformat-security -Wvla \
           -Wpointer-arith -Wcast-align -Wundef
XCFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude $(WARN) -MMD -MP \
           -fno-strict-aliasing
LDLIBS  := -luring -laio -lseccomp -ljansson -lpthread
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
        deps format clean fuzz fuzz-build fuzz-regress fuzz-clean
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
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka $(WRAP)
$(BUILD)/tests-asan/%: $(BUILD)/asan/tests/unit/%.o $(LIB_OBJ_ASAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka $(WRAP)
# The transport test replaces the KVM plumbing with recorders.
$(BUILD)/tests/test_virtio_pci $(BUILD)/tests-asan/test_virtio_pci: \
  WRAP := $(foreach f,vm_msi_alloc vm_msi_set vm_irqfd vm_ioeventfd \
            vm_pci_mmio_alloc vm_io_watch vm_set_irq,-Wl,--wrap=$(f))
# So does the VFIO device test (and it has no VFIO: the device is a file).
$(BUILD)/tests/test_vfio $(BUILD)/tests-asan/test_vfio: \
  WRAP := $(foreach f,vm_msi_alloc vm_msi_set vm_irqfd vm_irqfd_resample \
            vm_pci_mmio_alloc vm_pci_io_alloc vm_alloc_memslot vm_set_memslot,-Wl,--wrap=$(f))
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

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

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
FUZZ_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -Iinclude $(FUZZ_WARN) -MMD -MP \
                -fno-strict-aliasing -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) $(FUZZ_WRAP)
# The PCI targets replace the KVM plumbing, as their unit tests do.
$(BUILD)/fuzz/fuzz_virtio_pci: \
  FUZZ_WRAP := $(foreach f,vm_msi_alloc vm_msi_set vm_irqfd vm_ioeventfd \
                 vm_pci_mmio_alloc vm_io_watch vm_set_irq,-Wl,--wrap=$(f))
$(BUILD)/fuzz/fuzz_vfio_pci: \
  FUZZ_WRAP := $(foreach f,vm_msi_alloc vm_msi_set vm_irqfd vm_irqfd_resample \
                 vm_pci_mmio_alloc vm_pci_io_alloc vm_alloc_memslot \
                 vm_set_memslot,-Wl,--wrap=$(f))

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

#!/usr/bin/env python3
"""Write the seed corpora, tests/fuzz/corpus/<target>/<name>.

Each seed is a small valid input in the format its target's header comment
describes (opcodes as in the targets' enums and fuzz.h): a driver that
brings the device up and makes a few correct requests, plus a few that
break the rules. The seeds are committed; run this again after changing
an input format:  tests/fuzz/make-seeds.py
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def gpa(g):
    """fz_gpa(): selector (odd: 4G), 16-bit offset."""
    if g >= 1 << 32:
        return u8(1) + u16(g - (1 << 32))
    assert g < 0x10000
    return u8(0) + u16(g)


# ---- fz.h driver ops ----
DRV_MEM, DRV_DESC, DRV_DESC_AT, DRV_AVAIL, DRV_AVAIL_IDX, DRV_FLAGS = range(6)
NEXT, WRITE, INDIRECT = 1, 2, 4


def mem(g, data):
    return u8(DRV_MEM) + gpa(g) + u8(len(data)) + data


def desc(q, i, addr, length, flags=0, nxt=0):
    return u8(DRV_DESC) + u8(q) + u16(i) + u64(addr) + u32(length) + u16(flags) + u16(nxt)


def desc_at(table, i, addr, length, flags=0, nxt=0):
    return u8(DRV_DESC_AT) + gpa(table) + u8(i) + u64(addr) + u32(length) + u16(flags) + u16(nxt)


def avail(q, head):
    return u8(DRV_AVAIL) + u8(q) + u16(head)


def avail_idx(q, idx):
    return u8(DRV_AVAIL_IDX) + u8(q) + u16(idx)


def flags(q, f, used_event):
    return u8(DRV_FLAGS) + u8(q) + u16(f) + u16(used_event)


def qsize(n):
    """fz_qsize(): a power of two from its log2."""
    return u8(n.bit_length() - 1)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def write_crash(target, name, data):
    """A reproducer of a bug the fuzzer found (fixed): corpus/<target>/crash-<name>."""
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"crash-{name}"), "wb") as f:
        f.write(data)


# ---- virtq ----
def virtq():
    POP, PUSH, NOTIFY, HAS_WORK, UNPOP, REENABLE = range(6, 12)
    hdr = lambda fl, n: u8(fl) + qsize(n) + u64(0x1000) + u64(0x2000) + u64(0x3000)
    pop = lambda n=1: u8(POP) + u8(n - 1)
    push = lambda which=0, length=0: u8(PUSH) + u8(which) + u32(length)
    write("virtq", "chain", hdr(0, 8) + desc(0, 5, 0x8000, 16, NEXT, 2) +
          desc(0, 2, 0x9000, 512, NEXT, 7) + desc(0, 7, 0xa000, 1, WRITE) + avail(0, 5) +
          u8(HAS_WORK) + pop() + push(0, 513) + u8(NOTIFY) + pop())
    write("virtq", "indirect", hdr(2, 8) + desc_at(0x4000, 0, 0x8000, 12, NEXT, 2) +
          desc_at(0x4000, 2, 0x8100, 4000, NEXT, 1) + desc_at(0x4000, 1, 0xc000, 1, WRITE) +
          desc(0, 4, 0x4000, 64, INDIRECT) + avail(0, 4) + pop() + push() + u8(NOTIFY))
    write("virtq", "event-idx", hdr(1, 4) + desc(0, 0, 0x8000, 64) + desc(0, 1, 0x8100, 64, WRITE) +
          avail(0, 0) + avail(0, 1) + avail(0, 0) + flags(0, 0, 2) + pop(3) + u8(UNPOP) + u8(0) +
          pop() + push(1, 64) + push(0, 0) + u8(NOTIFY) + push() + u8(NOTIFY) +
          u8(REENABLE) + u8(1) + avail(0, 1) + pop())
    write("virtq", "high-ram", u8(3) + qsize(16) + u64(0x100000000) + u64(0x100000100) +
          u64(0x100000200) + desc(0, 0, 0x100000800, 0x800, WRITE) + avail(0, 0) + pop() + push())
    write("virtq", "loop", hdr(0, 8) + desc(0, 0, 0x8000, 1, NEXT, 1) + desc(0, 1, 0x8000, 1, NEXT, 0) +
          avail(0, 0) + pop() + pop())
    write("virtq", "avail-jump", hdr(1, 8) + avail_idx(0, 9) + pop() + u8(REENABLE) + u8(0) +
          desc(0, 0, 0xfff0, 0x20) + avail(0, 0) + pop())


# ---- blk ----
def blk():
    KICK, CONFIG, RESET, REQ = range(6, 10)
    IN, OUT, FLUSH, GET_ID, DISCARD, WZ = range(6)

    def req(q, t, sector, hdr, segs, status, table=None):
        b = u8(REQ) + u8(q) + u8(t) + u64(sector) + gpa(hdr) + u8(len(segs))
        for g, n, w in segs:
            b += gpa(g) + u16(n) + u8(w)
        b += gpa(status) + u8(1 if table is not None else 0)
        if table is not None:
            b += gpa(table)
        return b

    kick = lambda q=0: u8(KICK) + u8(q)
    one = qsize(8)
    write("blk", "read", u8(0) + one + req(0, IN, 1, 0x8000, [(0xa000, 512, 1)], 0x8100) + kick())
    write("blk", "write-read", u8(0) + one +
          mem(0xa000, bytes(range(64))) +
          req(0, OUT, 2, 0x8000, [(0xa000, 512, 0), (0xa200, 512, 0)], 0x8100) +
          req(0, IN, 2, 0x8040, [(0xc000, 1024, 1)], 0x8140) + kick() +
          req(0, FLUSH, 0, 0x8080, [], 0x8180) + kick())
    write("blk", "indirect", u8(0) + one +
          req(0, IN, 0, 0x8000, [(0xa000, 256, 1), (0xa100, 256, 1)], 0x8100, table=0x7000) + kick())
    write("blk", "get-id", u8(0x20) + one + b"fuzz-serial-01234567" +
          req(0, GET_ID, 0, 0x8000, [(0xa000, 20, 1)], 0x8100) + kick() + u8(CONFIG) + u16(0) + u8(3))
    seg = struct.pack("<QII", 4, 8, 0)  # sector, num_sectors, flags
    write("blk", "discard-zeroes", u8(0) + one + mem(0x9000, seg) +
          req(0, DISCARD, 0, 0x8000, [(0x9000, 16, 0)], 0x8100) +
          mem(0x9100, struct.pack("<QII", 8, 4, 1)) +
          req(0, WZ, 0, 0x8040, [(0x9100, 16, 0)], 0x8140) + kick())
    write("blk", "two-queues", u8(2) + one + qsize(16) +
          req(1, IN, 3, 0x8000, [(0xa000, 512, 1)], 0x8100) + kick(1) +
          req(0, OUT, 127, 0x8040, [(0xb000, 512, 0)], 0x8140) + kick(0) + u8(RESET) +
          req(0, IN, 127, 0x8080, [(0xb000, 512, 1)], 0x8180) + kick(0))
    write("blk", "readonly-bad", u8(1) + one +
          req(0, OUT, 0, 0x8000, [(0xa000, 512, 0)], 0x8100) +
          req(0, IN, 1 << 60, 0x8040, [(0xa000, 512, 1)], 0x8140) +
          req(0, 0x7f, 0, 0x8080, [], 0x8180) + kick())


# ---- net ----
def net():
    KICK, RX, IOSTEP, DRAIN, CONFIG, RESET, HDR, TX, RXBUF = range(6, 15)
    ALL = (1 << 64) - 1
    sizes = lambda n: b"".join(qsize(n) for _ in range(5))

    def tx(pair, hdr, hg, fg, n):
        return u8(TX) + u8(pair) + hdr + gpa(hg) + gpa(fg) + u16(n)

    def rxbuf(pair, bufs):
        return u8(RXBUF) + u8(pair) + u8(len(bufs) - 1) + b"".join(gpa(g) + u16(n) for g, n in bufs)

    def rx(pair, payload):
        return u8(RX) + u8(pair) + u16(len(payload)) + payload

    plain = bytes(12)
    frame = bytes(range(60))
    write("net", "tx", u8(0) + u64(ALL) + sizes(16) + mem(0xa100, frame) +
          tx(0, plain, 0xa000, 0xa100, 60) + u8(KICK) + u8(1) + u8(DRAIN))
    csum = struct.pack("<BBHHHH", 1, 1, 54, 1448, 34, 16) + u16(0)  # NEEDS_CSUM, TCPV4
    write("net", "tx-tso", u8(0) + u64(ALL) + sizes(16) + tx(0, csum, 0xa000, 0xa100, 9000) +
          u8(KICK) + u8(1) + u8(DRAIN) + u8(HDR) + csum[:10] + u32(9000) + u64(ALL))
    write("net", "rx", u8(0) + u64(ALL) + sizes(16) + rxbuf(0, [(0xb000, 2048), (0xb800, 2048)]) +
          u8(KICK) + u8(0) + rx(0, bytes(12) + bytes(range(100))) + u8(IOSTEP))
    write("net", "rx-merge", u8(0) + u64(ALL) + sizes(16) +
          rx(0, bytes(12) + bytes(range(200))) + rxbuf(0, [(0xb000 + 64 * i, 64) for i in range(4)]) +
          u8(KICK) + u8(0) + u8(CONFIG) + u16(0) + u8(2))
    no_mrg = ALL & ~(1 << 15)
    write("net", "rx-no-merge", u8(0) + u64(no_mrg) + sizes(8) +
          rxbuf(0, [(0xb000, 64), (0xb100, 1600)]) + rx(0, bytes(12) + bytes(range(100))) +
          u8(RESET) + rxbuf(0, [(0xb000, 1600)]) + rx(0, bytes(112)) + u8(IOSTEP))
    ctrl = mem(0xc000, struct.pack("<BBH", 4, 0, 2)) + desc(4, 0, 0xc000, 4, NEXT, 1) + \
        desc(4, 1, 0xc100, 1, WRITE, 0) + avail(4, 0) + u8(KICK) + u8(4)
    write("net", "mq-ctrl", u8(1) + u64(ALL) + sizes(8) + ctrl +
          tx(1, plain, 0xa000, 0xa100, 60) + u8(KICK) + u8(3) + u8(DRAIN))


# ---- virtio-pci ----
def virtio_pci():
    CFG, CFG_RAW, PIO, BAR, MMIO_RAW, IOSTEP, RX, DRAIN = range(6, 14)
    W = {1: 0, 2: 1, 4: 2, 8: 3}
    cfg_wr = lambda reg, v, n: u8(CFG) + u8(reg) + u8(W[n]) + u32(v) + u8(1)
    cfg_rd = lambda reg, n: u8(CFG) + u8(reg) + u8(W[n]) + u32(0) + u8(0)
    bar_wr = lambda off, v, n: u8(BAR) + u16(off) + u8(W[n]) + u64(v) + u8(1)
    bar_rd = lambda off, n: u8(BAR) + u16(off) + u8(W[n]) + u64(0) + u8(0)

    def queue(q, size, d, a, u, vector=None):
        b = bar_wr(22, q, 2) + bar_wr(24, size, 2)
        if vector is not None:
            b += bar_wr(26, vector, 2)
        return b + bar_wr(32, d, 4) + bar_wr(40, a, 4) + bar_wr(48, u, 4) + bar_wr(28, 1, 2)

    def up(features_lo, queues, msix=False):
        b = cfg_wr(0x10, 0xc0000000, 4) + cfg_wr(0x04, 0x6, 2) + cfg_rd(0x34, 1)
        if msix:
            b += cfg_wr(0x8a, 0x8000, 2)  # MSI-X enable
        b += bar_wr(20, 1, 1) + bar_wr(20, 3, 1) + bar_rd(4, 4)
        b += bar_wr(8, 0, 4) + bar_wr(12, features_lo, 4) + bar_wr(8, 1, 4) + bar_wr(12, 1, 4)
        b += bar_wr(20, 0xb, 1) + bar_rd(20, 1)
        if msix:
            b += bar_wr(16, 0, 2) + bar_wr(0x4000 + 12, 0, 4)  # config vector 0, unmasked
            b += bar_wr(0x4010, 0xfee00000, 4) + bar_wr(0x4018, 0x41, 4) + bar_wr(0x401c, 0, 4)
        for i, q in enumerate(queues):
            b += queue(i, *q, vector=(i + 1) if msix else None)
        return b + bar_wr(20, 0xf, 1)

    blk_feat = (1 << 28) | (1 << 29) | (1 << 9) | (1 << 6) | (1 << 2) | (1 << 1)
    ring = (8, 0x0000, 0x1000, 0x2000)
    blk_req = mem(0x8000, struct.pack("<IIQ", 0, 0, 1)) + desc(0, 0, 0x8000, 16, NEXT, 1) + \
        desc(0, 1, 0x9000, 512, NEXT | WRITE, 2) + desc(0, 2, 0x8100, 1, WRITE) + avail(0, 0)
    # Found by fuzzing: DRIVER_OK cleared and set again (no reset) activates
    # the device a second time; blk_activate() leaks the first request pool.
    write_crash("virtio_pci", "reactivate-leak", u8(0) + up(blk_feat, [ring]) +
                bar_wr(20, 0xb, 1) + bar_wr(20, 0xf, 1))
    write("virtio_pci", "blk-read", u8(0) + up(blk_feat, [ring]) + blk_req +
          bar_wr(0x3000, 0, 2) + u8(IOSTEP) + bar_rd(0x1000, 1) + bar_rd(0x2000, 8))
    write("virtio_pci", "blk-msix", u8(0) + up(blk_feat, [ring], msix=True) + blk_req +
          bar_wr(0x3000, 0, 2) + u8(IOSTEP) + bar_rd(0x5000, 8) + cfg_wr(0x8a, 0xc000, 2) +
          bar_wr(0x4010 + 12, 1, 4) + bar_wr(20, 0, 1) + bar_rd(20, 1))
    # The PCI_CFG window (cap at 0x98): bar 0, offset 20 (device_status), length 1.
    window = cfg_wr(0x98 + 4, 0, 1) + cfg_wr(0x98 + 8, 20, 4) + cfg_wr(0x98 + 12, 1, 4)
    write("virtio_pci", "pci-cfg-window", u8(0) + window + cfg_wr(0x98 + 16, 1, 1) +
          cfg_rd(0x98 + 16, 4) + u8(PIO) + u8(0) + u8(2) + u32(0x80001800 | 0x98 + 16) + u8(1) +
          u8(PIO) + u8(4) + u8(0) + u32(0) + u8(0) + u8(CFG_RAW) + u32(0x80000000) + u8(2) + u32(0) + u8(0))
    net_feat = (1 << 5) | (1 << 16) | (1 << 15) | (1 << 0) | (1 << 29)
    rings = [(8, 0x0000, 0x1000, 0x2000), (8, 0x3000, 0x4000, 0x5000)]
    tx = mem(0xa000, bytes(12)) + mem(0xa100, bytes(range(60))) + desc(1, 0, 0xa000, 12, NEXT, 1) + \
        desc(1, 1, 0xa100, 60) + avail(1, 0)
    rxb = desc(0, 0, 0xb000, 2048, WRITE) + avail(0, 0)
    write("virtio_pci", "net", u8(1) + up(net_feat, rings) + tx + bar_wr(0x3004, 1, 2) + u8(IOSTEP) +
          u8(DRAIN) + rxb + bar_wr(0x3000, 0, 2) + u8(IOSTEP) + u8(RX) + u8(0) + u16(100) +
          bytes(100) + bar_rd(0x2000, 4))


# ---- vfio-pci ----
def vfio_pci():
    CFG, CFG_RAW, BAR, MMIO_RAW, PIO_RAW = range(5)
    W = {1: 0, 2: 1, 4: 2, 8: 3}
    cfg_wr = lambda reg, v, n: u8(CFG) + u8(reg) + u8(W[n]) + u32(v) + u8(1)
    cfg_rd = lambda reg, n: u8(CFG) + u8(reg) + u8(W[n]) + u32(0) + u8(0)
    bar = lambda b, off, v, n, w: u8(BAR) + u8(b) + u16(off) + u8(W[n]) + u64(v) + u8(w)
    mem_on = cfg_wr(0x04, 0x7, 2)
    write("vfio_pci", "template", u8(0) + u8(0) + cfg_rd(0, 4) + cfg_rd(0x10, 4) +
          cfg_wr(0x10, 0xffffffff, 4) + cfg_rd(0x10, 4) + cfg_wr(0x10, 0xc0000000, 4) + mem_on +
          bar(2, 8, 0, 4, 0) + bar(1, 0x10, 0x1234, 4, 1) + cfg_rd(0x3c, 4))
    msix = mem_on + cfg_wr(0xa2, 0x8000, 2) + bar(3, 0, 0xfee00000, 4, 1) + bar(3, 8, 0x30, 4, 1) + \
        bar(3, 12, 0, 4, 1) + bar(3, 0x2000, 0, 8, 0) + cfg_wr(0xa2, 0xc000, 2) + cfg_wr(0xa2, 0, 2)
    write("vfio_pci", "msix", u8(0) + u8(0) + msix)
    msi = mem_on + cfg_wr(0xcc, 0xfee00000, 4) + cfg_wr(0xd4, 0x41, 2) + cfg_wr(0xca, 1, 2) + \
        cfg_rd(0xc8, 4) + cfg_wr(0xca, 0, 2)
    write("vfio_pci", "msi", u8(0) + u8(0) + msi)
    # The MSI-X table moved to BAR 0 at 0x1000 with 16 vectors, PBA in BAR 3.
    patch = u8(3) + u8(0xa2) + u8(15) + u8(0xa4) + u8(0x00) + u8(0xa5) + u8(0x10)
    write("vfio_pci", "msix-bar0", patch + u8(0) + mem_on + cfg_wr(0xa2, 0x8000, 2) +
          bar(0, 0x10f0, 0xfee00000, 4, 1) + bar(0, 0x10fc, 0, 4, 1) + bar(0, 0x2000, 0, 4, 0))
    # Regions of other sizes: an I/O-less device, BAR 1 too small for its table.
    sizes = u8(1) + b"".join(u8(c) + u8(m) for c, m in [(14, 1), (0, 0), (4, 0), (13, 1), (16, 1), (0, 0)])
    write("vfio_pci", "other-bars", u8(0) + sizes + mem_on + bar(4, 0x100, 7, 8, 1) + bar(4, 0x100, 0, 8, 0))
    write("vfio_pci", "irqs-fail", u8(0) + u8(2) + cfg_wr(0xa2, 0x8000, 2) + cfg_wr(0xca, 1, 2))


# ---- loader ----
def bzimage(version=0x020F, loadflags=1, xload=1, reloc=0, align=0x200000, pref=0x100000,
            init_size=0x10000, payload=64, setup_sects=1):
    setup = ((setup_sects or 4) + 1) * 512
    b = bytearray(setup + payload)
    b[0x1F1] = setup_sects
    b[0x1FE:0x200] = u16(0xAA55)
    b[0x200] = 0xEB
    b[0x201] = 0x6A
    b[0x202:0x206] = b"HdrS"
    b[0x206:0x208] = u16(version)
    b[0x211] = loadflags
    b[0x22C:0x230] = u32(0x7FFFFFFF)
    b[0x230:0x234] = u32(align)
    b[0x234] = reloc
    b[0x236:0x238] = u16(xload)
    b[0x238:0x23C] = u32(2048)
    b[0x258:0x260] = u64(pref)
    b[0x260:0x264] = u32(init_size)
    for i in range(payload):
        b[setup + i] = i & 0xFF
    return bytes(b)


def elf(segs, entry=0x100000):
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, 64, 0, 0, 64, 56, len(segs), 0, 0, 0)
    off = 64 + 56 * len(segs)
    ph, body = b"", b""
    for paddr, data, memsz in segs:
        ph += struct.pack("<IIQQQQQQ", 1, 5, off + len(body), (0xFFFFFFFF80000000 + paddr) & (2**64 - 1), paddr,
                          len(data), memsz, 0x1000)
        body += data
    return eh + ph + body


def loader():
    write("loader", "bzimage", bzimage())
    write("loader", "bzimage-relocatable", bzimage(reloc=1, pref=0x1000000, align=0x200000))
    write("loader", "bzimage-old", bzimage(version=0x020B))
    write("loader", "bzimage-no64", bzimage(xload=0, setup_sects=0, payload=64))
    # Found by fuzzing: pref_address + init_size wraps past 2^64, so the
    # placement check (kernel_check) passes and only the copy fails.
    write_crash("loader", "pref-address-wrap", bzimage(pref=0xFFFFFFFFFFFFFF00, init_size=0x1000))
    write("loader", "elf", elf([(0x100000, b"\xf4" * 16, 0x2000)]))
    write("loader", "elf-two", elf([(0x200000, b"\x90" * 32, 0x1000), (0x100000, b"\xf4" * 8, 8)],
                                   entry=0x200010))
    write("loader", "elf-high", elf([(0x100000000, b"\xf4" * 8, 0x100)], entry=0x100000000))


# ---- config ----
def config():
    args = lambda *a: b"\0".join(x.encode() for x in a)
    write("config", "basic", args("--kernel", "/boot/vmlinuz", "--mem", "512M", "--cpus", "2"))
    write("config", "devices", args(
        "--kernel", "k", "--disk", "path=/tmp/a.img,readonly=on,serial=abc,cache=none,engine=aio,queues=4",
        "--disk", "path=b.img,engine=sync", "--net", "tap=tap0,mac=52:54:00:12:34:56,queues=2",
        "--net", "tap=tap1", "--vfio", "0000:00:04.0", "--vfio", "/sys/bus/pci/devices/0000:01:00.1",
        "--vfio", "02:1f.7"))
    write("config", "equals", args(
        "--kernel=k", "--initrd=i", "--cmdline=console=ttyS0", "--hugepages", "2M", "--mem", "4G",
        "--console", "file:/tmp/x", "-v", "-vq", "--no-seccomp"))
    write("config", "scripted", args(
        "--kernel", "k", "--timeout", "30", "--expect", "^login:", "--fail", "Kernel panic",
        "--result", "json:/tmp/r.json", "--api-socket", "/tmp/vmm.sock", "--mem", "64"))
    write("config", "help", args("--help"))
    # Found by fuzzing: glibc's regcomp() needs memory exponential in a run
    # of repetition operators; 22 of them take 3 GB (and 13 s).
    write_crash("config", "regex-repetition", args("--kernel", "k", "--expect", "a" + "+" * 22))
    write("config", "bad", args("--kernel", "k", "--mem", "1T1", "--cpus", "0x10", "extra"))


# ---- vsock ----
def vsock():
    (KICK, IO, STATUS, FEATURES, QUEUE, START, CONFIG, RESTORE, TX, RXBUF,
     HCONNECT, HSEND, HREAD, HCLOSE, LISTEN, ACCEPT, STARVE) = range(6, 23)
    REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
    AUTO = u8(0)  # a buffer address the harness picks

    def hdr(flags=0x06, size=64):
        return u8(flags) + qsize(size) * 3

    def seglen(n):
        """seg_len(): exact under 64, else a multiple of 64 up to 11 KiB."""
        if n < 0x40:
            return u8(n)
        assert n % 64 == 0 and n // 64 + 0x3F < 0xF0
        return u8(n // 64 + 0x3F)

    def rxbuf(n=8, segs=(44, 4096), event=False, indirect=False, bad=False, kick=True):
        cnt = (n - 1) | (0 if kick else 8) | (0x10 if indirect else 0) | (0x20 if event else 0)
        b = u8(RXBUF) + u8(cnt)
        for _ in range(n):
            b += u8((len(segs) - 1) | (4 if bad else 0))
            if bad:
                b += AUTO
            b += b"".join(seglen(x) + AUTO for x in segs)
            if indirect:
                b += AUTO
        return b

    def tx(op, ports=b"\x00", misc=0, flags=0, payload=(), extra=b"", shape=0):
        """ports: tx_ports() bytes (default: the first pair the guest knows);
        shape: bulk (8), 1 << k copies (k << 4), each from the next guest port (0x80)."""
        return (u8(TX) + ports + u8(op) + u8(misc) + u8(flags) + u8(len(payload) | shape) + extra +
                AUTO + b"".join(seglen(x) + AUTO for x in payload) +
                (AUTO if misc & 0x20 else b""))

    to_listener = lambda gport_lo, second=False: u8(1 | (4 if second else 0)) + u8(gport_lo)
    raw = lambda data: u8(12) + u8(len(data)) + data
    connect = lambda slot=0: u8(HCONNECT) + u8(slot) + u8(0)  # "CONNECT 1234\n"
    send = lambda slot, data: u8(HSEND) + u8(slot) + raw(data)
    read = lambda slot, n=0: u8(HREAD) + u8(slot) + u16(n)
    close = lambda slot, how=0: u8(HCLOSE) + u8(slot) + u8(how)

    # The guest connects to PATH_5000; bytes both ways; it shuts down, the program closes.
    write("vsock", "guest-connects", hdr() + rxbuf() + tx(REQUEST, to_listener(7)) +
          u8(ACCEPT) + u8(0) + u8(0) + tx(RW, payload=(32,)) + read(0) +
          send(0, b"hello") + tx(CREDIT_REQUEST) + tx(SHUTDOWN, flags=2) + read(0) +
          close(0) + u8(IO) + u8(3) + tx(SHUTDOWN, flags=3) + rxbuf(2))
    # A program connects to guest port 1234; the guest answers; bytes both ways.
    write("vsock", "host-connects", hdr() + rxbuf() + connect(0) + tx(RESPONSE) + read(0) +
          send(0, b"ping") + tx(RW, payload=(44, 128)) + read(0) + tx(CREDIT_UPDATE) +
          close(0, 1) + u8(IO) + u8(0) + tx(RST) + connect(1) + close(1, 3))
    # The guest's credit is small: the program's 64 KiB wait for it.
    write("vsock", "credit", hdr() + rxbuf(8) + connect(0) +
          tx(RESPONSE, misc=0x80, extra=u32(1000) + u32(0)) + read(0) +
          u8(HSEND) + u8(0) + u8(8) + u16(16384) + u8(IO) + u8(3) +
          tx(CREDIT_UPDATE, misc=0x80, extra=u32(1 << 20) + u32(1000)) + u8(IO) + u8(3) +
          rxbuf(4) + u8(IO) + u8(3))
    # A reset dooms the connections; a program that connected before the driver waits on;
    # a restore tells the guest of a transport reset on the event queue.
    write("vsock", "reset-restore", hdr() + rxbuf() + connect(0) + tx(RESPONSE) + read(0) +
          u8(STATUS) + u8(0) + connect(1) + u8(IO) + u8(1) + u8(START) + rxbuf(4) +
          read(1) + u8(RESTORE) + u8(0) + rxbuf(1, (8,), event=True) + rxbuf(1, (4,), event=True) +
          u8(CONFIG) + u8(0) + u8(3))
    # Packets that break the rules, then an rx buffer too small for a header.
    bad = (tx(RW, to_listener(9)) + tx(REQUEST, to_listener(9, True)) +
           tx(REQUEST, to_listener(5)) + tx(REQUEST, to_listener(5)) +
           tx(RW, misc=8, extra=u32(70000), payload=(16,)) +
           tx(REQUEST, u8(3) + u32(77) + u32(5000), misc=4, extra=u16(2)) +
           tx(0x80, misc=0, extra=b"") + tx(REQUEST, to_listener(11), misc=3, extra=u64(3) + u64(2)) +
           tx(REQUEST, to_listener(12), misc=2, extra=u8(42)))
    bad = bad.replace(u8(TX) + u8(0) + u8(0x80), u8(TX) + u8(0) + u8(0x80) + u16(99), 1)
    write("vsock", "bad-packets", hdr() + rxbuf(16) + bad + u8(START) + rxbuf(1, (16,)) +
          tx(REQUEST, to_listener(13)) + u8(START) + rxbuf(1, (16, 4096), bad=True) +
          tx(REQUEST, to_listener(14)))
    # Host programs with bad or partial command lines; one that never reads.
    lines = b"".join(u8(HCONNECT) + u8(i) + u8(7) + u8(i) for i in range(4))
    write("vsock", "host-lines", hdr(0) + rxbuf(4) + lines + connect(5) + close(5) +
          u8(HCONNECT) + u8(6) + u8(4) + send(6, b"\n") + u8(HCONNECT) + u8(7) + u8(2) + u32(4000000000) +
          u8(HCONNECT) + u8(8) + u8(6) + u8(3) + b"abc" + tx(RESPONSE) + u8(IO) + u8(3))
    # Indirect chains, a header split over two descriptors, EVENT_IDX off.
    write("vsock", "indirect-split", u8(0x0E) + u64((1 << 32) | (1 << 28)) + qsize(16) * 3 +
          rxbuf(4, (20, 24, 4096), indirect=True) + tx(REQUEST, to_listener(3), misc=0x30, extra=u8(10)) +
          u8(ACCEPT) + u8(0) + u8(2) + tx(RW, misc=0x30, extra=u8(30), payload=(10, 20, 30)) +
          read(2) + send(2, b"x" * 100))
    # Bulk: 8 x 64 KiB to a program that does not read (its socket fills, the rest
    # waits in the connection's buffer, then more than the credit: reset), 64 small
    # rx buffers at once (the rx budget), then 64 connections at once (the table fills).
    write("vsock", "bulk", hdr(0x02, 128) + rxbuf(2) + tx(REQUEST, to_listener(1)) +
          u8(ACCEPT) + u8(0) + u8(0x80) + tx(RW, shape=0x08 | 0x20) + read(0x80, 100) + u8(IO) + u8(0) +
          read(0) + u8(IO) + u8(0) + tx(RW, shape=0x08 | 0x30) + u8(HSEND) + u8(0) + u8(8) + u16(20000) +
          u8(RXBUF) + u8(0x47) + b"".join(u8(0) + seglen(60) + AUTO for _ in range(8)) +
          u8(IO) + u8(3) + tx(REQUEST, to_listener(40), shape=0xE0) + rxbuf(8) + u8(IO) + u8(3))
    # Data for the guest and an rx buffer with no room past the header: NEEDS_RESET
    # (an end of stream for the guest before 4d04558, while the program still wrote).
    write("vsock", "rx-no-room", hdr(0) + rxbuf(2) + connect(0) + tx(RESPONSE) + read(0) +
          rxbuf(1, (44,)) + send(0, b"hello") + rxbuf(4) + send(0, b"world") + u8(IO) + u8(3) +
          u8(START) + rxbuf(4) + send(0, b"again"))
    # The host is out of descriptors when a program connects: the listener waits
    # until a connection closes, then takes it.
    write("vsock", "starve", hdr() + rxbuf(8) + tx(REQUEST, to_listener(1)) +
          u8(HCONNECT) + u8(0x81) + u8(0) + u8(STARVE) + u8(0) + u8(IO) + u8(1) + tx(RST) +
          u8(IO) + u8(1) + tx(RESPONSE, u8(4)) + read(1))
    # The driver by hand: status, features, queue registers, kicks on rings it wrote.
    write("vsock", "driver", u8(0x20) + qsize(8) * 3 + u8(STATUS) + u8(1) + u8(STATUS) + u8(3) +
          u8(FEATURES) + u64((1 << 32) | (1 << 29)) + u8(STATUS) + u8(11) +
          b"".join(u8(QUEUE) + u8(q) + qsize(8) + u8(0) for q in range(3)) + u8(STATUS) + u8(15) +
          desc(0, 0, 0x8000, 64, WRITE) + avail(0, 0) + u8(KICK) + u8(0) +
          u8(QUEUE) + u8(1) + qsize(4) + u8(1) + gpa(0x9000) + gpa(0x9100) + gpa(0x9200) +
          connect(0) + u8(LISTEN) + u8(2) + u8(LISTEN) + u8(1))


# ---- vmlinux ----
def vmlinux():
    """Decompressed bzImage payloads (fuzz_vmlinux.c): a vmlinux ELF64 linked at
    16M / 0xffffffff81000000 with two segments and the KASLR relocation tables
    behind it (0, 64-bit, 0, inverse 32-bit, 0, 32-bit; read backwards), and the
    same compressed as the kernel's build does (the size as a 32-bit word behind)."""
    import gzip
    import lzma
    import zlib

    KMAP, LINK, VIRT = 0xFFFFFFFF80000000, 0x1000000, 0xFFFFFFFF81000000
    R32, RINV, R64 = range(3)
    # image offset, kind, value linked there
    places = [(0x10, R32, 0x81000040), (0x24, R32, 0x81003FF0), (0x1010, R32, 0x81001000),
              (0x40, RINV, 0x12340), (0x80, R64, VIRT + 0x100), (0x10F8, R64, VIRT + 0x3000)]
    entry = lambda off: (VIRT + off) & 0xFFFFFFFF

    def image(n, base):
        return bytearray(((i + base) * 2654435761 >> 13) & 0xFF for i in range(n))

    def elf(tables=True, rnd=b"\x01" * 9, extra=(), bss=0x3000, shdrs=0, prepend_zero=False):
        """tables: {kind: [entries]} or True (the places) or False (none)."""
        seg0, seg1 = image(0x400, 0), image(0x100, 0x1000)
        for off, kind, v in places:
            seg, o = (seg0, off) if off < 0x1000 else (seg1, off - 0x1000)
            seg[o:o + (8 if kind == R64 else 4)] = (u64 if kind == R64 else u32)(v)
        shoff = 0x600 if shdrs else 0
        eh = b"\x7fELF" + bytes([2, 1, 1]) + rnd[:9]
        eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, LINK, 64, shoff, 0, 64, 56, 2, 64, shdrs, 0)
        ph = struct.pack("<IIQQQQQQ", 1, 5, 0x100, VIRT, LINK, 0x400, 0x400, 0x200000)
        ph += struct.pack("<IIQQQQQQ", 1, 6, 0x500, VIRT + 0x1000, LINK + 0x1000, 0x100, bss, 0x1000)
        b = eh + ph + bytes(0x100 - len(eh) - len(ph)) + seg0 + seg1 + bytes(64 * shdrs)
        if tables is False:
            return b
        if tables is True:
            tables = {k: [entry(o) for o, kk, _ in places if kk == k] for k in (R32, RINV, R64)}
        for k, e in extra:
            tables[k] = tables[k] + [e]
        t = (u32(0) if prepend_zero else b"") + u32(0) + b"".join(u32(e) for e in reversed(tables[R64]))
        t += u32(0) + b"".join(u32(e) for e in reversed(tables[RINV]))
        t += u32(0) + b"".join(u32(e) for e in reversed(tables[R32]))
        return b + t

    def zstd_raw(data):
        """A zstd frame of raw and RLE blocks (no library needed): single segment, content size."""
        assert 256 <= len(data) < 65536 + 256
        out = bytes([0x28, 0xB5, 0x2F, 0xFD, 0x60]) + u16(len(data) - 256)
        i, blocks = 0, []
        while i < len(data):
            j = i
            while j < len(data) and data[j] == data[i]:
                j += 1
            if j - i >= 16:
                blocks.append((1, j - i, data[i:i + 1]))
                i = j
                continue
            j = i + 1
            while j < len(data) and j - i < 0x1000 and data[j:j + 16] != bytes([data[j]]) * 16:
                j += 1
            blocks.append((0, j - i, data[i:j]))
            i = j
        for n, (kind, size, body) in enumerate(blocks):
            last = 1 if n == len(blocks) - 1 else 0
            out += struct.pack("<I", last | kind << 1 | size << 3)[:3] + body
        return out

    size = lambda data: u32(len(data))
    v = elf()
    write("vmlinux", "vmlinux", v)
    write("vmlinux", "vmlinux-slots", elf(rnd=bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x07, 0, 0, 0x80])))
    write("vmlinux", "vmlinux-norelocs", elf(tables=False))
    write("vmlinux", "vmlinux-empty-tables", elf(tables={R32: [], RINV: [], R64: []}))
    write("vmlinux", "vmlinux-edges", elf(tables={R32: [entry(0x3FFC)], RINV: [entry(0x3FF8)],
                                                  R64: [entry(0)]}))
    write("vmlinux", "vmlinux-sections", elf(shdrs=2))
    write("vmlinux", "vmlinux-bad-reloc", elf(extra=[(R64, entry(0x4000 - 4))]))
    write("vmlinux", "vmlinux-below-map", elf(extra=[(R32, 0x01000000), (RINV, 0x80000000)]))
    write("vmlinux", "vmlinux-extra-zero", elf(prepend_zero=True))
    write("vmlinux", "vmlinux-fills-ram", elf(bss=0x4FF000))  # 6M: the one physical slot
    write("vmlinux", "vmlinux-too-big", elf(bss=0x700000))
    write("vmlinux", "xz", lzma.compress(v, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                         filters=[{"id": lzma.FILTER_X86},
                                                  {"id": lzma.FILTER_LZMA2, "preset": 6}]) + size(v))
    write("vmlinux", "zstd", zstd_raw(v) + size(v))
    write("vmlinux", "gzip", gzip.compress(v, compresslevel=9, mtime=0) + size(v))
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    write("vmlinux", "gzip-norelocs", z.compress(elf(tables=False)) + z.flush() + u32(0x600))
    write("vmlinux", "bzip2", b"BZh91AY&SY" + bytes(range(40)) + u32(0x10000))
    write("vmlinux", "lz4", bytes([0x02, 0x21, 0x4C, 0x18]) + bytes(range(40)) + u32(0x10000))


def main():
    for f in (virtq, blk, net, virtio_pci, vfio_pci, loader, config, vsock, vmlinux):
        f()
    total = 0
    for d in sorted(os.listdir(ROOT)):
        n = sum(os.path.getsize(os.path.join(ROOT, d, x)) for x in os.listdir(os.path.join(ROOT, d)))
        total += n
        print(f"{d}: {len(os.listdir(os.path.join(ROOT, d)))} seeds, {n} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

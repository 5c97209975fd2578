#!/usr/bin/env python3
"""Read and doctor vmm snapshots for the CLI tests (format: include/state.h).

  snapshot_tool.py diff A B         the sections of A/state and B/state, byte for
                                    byte, except what is a clock (below); prints
                                    each difference, exit 1 if any
  snapshot_tool.py set-format DIR N   header format version N (checksum fixed)
  snapshot_tool.py set-vendor DIR V   header CPU vendor V (checksum fixed)
  snapshot_tool.py flip DIR NAME      flip one byte of section NAME's payload
  snapshot_tool.py set-tsc DIR KHZ    header TSC frequency (checksum fixed)
  snapshot_tool.py all-features DIR   the CPU section's last CPU feature word
                                      (CPUID 0x80000001 EDX) all ones, its
                                      checksum fixed: features no host has
  snapshot_tool.py all-vm-features DIR  the same in the VM section (the check a
                                      stream without a CPU section gets)

What counts as a clock: the VM section's kvmclock value and wall clock, the
PIT channels' load times, a vCPU's TSC MSR and its LAPIC timer's current count.
"""
import struct
import sys
import zlib

HDR = 8 + 4 + 4 + 12 + 4 + 4
SEC = 4 + 4 + 24 + 8 + 4
IRQCHIP = 520            # struct kvm_irqchip
PIT_CHANNEL = 24         # struct kvm_pit_channel_state
SEC_VM, SEC_CPU = 3, 6
MSR_TSC = 0x10
APIC_TMCCT = 0x390


def read(path):
    with open(path + "/state", "rb") as f:
        return bytearray(f.read())


def sections(buf):
    off, out = HDR, []
    while True:
        typ, ver, name, length, crc = struct.unpack_from("<II24sQI", buf, off)
        name = name.rstrip(b"\0").decode()
        out.append((typ, name, off + SEC, length))
        off += SEC + length
        if typ == 0xFFFF:
            return out


def mask_vm(p):
    p = bytearray(p)
    pit = 4 + 3 * IRQCHIP
    for ch in range(3):  # count_load_time: the last s64 of each channel
        o = pit + ch * PIT_CHANNEL + PIT_CHANNEL - 8
        p[o:o + 8] = bytes(8)
    clock = pit + 3 * PIT_CHANNEL + 4 + 36  # after flags and reserved
    p[clock:clock + 16] = bytes(16)
    return p


def mask_vcpu(p):
    p = bytearray(p)
    o = 4
    for _ in range(4):  # regs, sregs, xsave, xcrs: u32 length + bytes
        (n,) = struct.unpack_from("<I", p, o)
        o += 4 + n
    (nmsrs,) = struct.unpack_from("<I", p, o)
    o += 4
    for _ in range(nmsrs):
        (idx,) = struct.unpack_from("<I", p, o)
        if idx == MSR_TSC:
            p[o + 4:o + 12] = bytes(8)
        o += 12
    (n,) = struct.unpack_from("<I", p, o)  # debugregs
    o += 4 + n + 4  # and the MP state
    (n,) = struct.unpack_from("<I", p, o)  # the LAPIC's 1024 bytes
    p[o + 4 + APIC_TMCCT:o + 4 + APIC_TMCCT + 4] = bytes(4)
    return p


def diff(a, b):
    sa, sb = sections(read(a)), sections(read(b))
    ba, bb = read(a), read(b)
    bad = 0
    if [(t, n) for t, n, _, _ in sa] != [(t, n) for t, n, _, _ in sb]:
        print("different sections:", [n for _, n, _, _ in sa], [n for _, n, _, _ in sb])
        return 1
    for (t, n, oa, la), (_, _, ob, lb) in zip(sa, sb):
        pa, pb = bytes(ba[oa:oa + la]), bytes(bb[ob:ob + lb])
        if t == 3:
            pa, pb = mask_vm(pa), mask_vm(pb)
        elif t == 4:
            pa, pb = mask_vcpu(pa), mask_vcpu(pb)
        if pa != pb:
            first = next((i for i in range(min(len(pa), len(pb))) if pa[i] != pb[i]),
                         min(len(pa), len(pb)))
            print(f"section {n}: differs (lengths {len(pa)} {len(pb)}, first at {first})")
            bad = 1
    return bad


def fix_header(buf):
    buf[HDR - 4:HDR] = struct.pack("<I", zlib.crc32(bytes(buf[:HDR - 4])))


def all_features(buf, section_type):
    """The last feature word of section_type's payload all ones (buf: a state stream)."""
    for t, _, o, l in sections(buf):
        if t == section_type:
            buf[o + l - 4:o + l] = b"\xff" * 4
            hdr = o - SEC
            buf[hdr + 40:hdr + 44] = struct.pack("<I", zlib.crc32(bytes(buf[o:o + l])))
            return
    raise ValueError("no section of type %d" % section_type)


def write(path, buf):
    with open(path + "/state", "wb") as f:
        f.write(buf)


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "diff":
        return diff(d, sys.argv[3])
    buf = read(d)
    if cmd == "set-format":
        buf[8:12] = struct.pack("<I", int(sys.argv[3]))
        fix_header(buf)
    elif cmd == "set-vendor":
        buf[16:28] = sys.argv[3].encode().ljust(12, b"\0")[:12]
        fix_header(buf)
    elif cmd == "set-tsc":
        buf[28:32] = struct.pack("<I", int(sys.argv[3]))
        fix_header(buf)
    elif cmd == "all-features":
        all_features(buf, SEC_CPU)
    elif cmd == "all-vm-features":
        all_features(buf, SEC_VM)
    elif cmd == "flip":
        for _, n, o, l in sections(buf):
            if n == sys.argv[3] and l:
                buf[o + l // 2] ^= 0x40
    write(d, buf)
    return 0


if __name__ == "__main__":
    sys.exit(main())

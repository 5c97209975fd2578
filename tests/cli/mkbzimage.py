#!/usr/bin/env python3
"""mkbzimage.py ELF OUT COMPRESSION: wrap a tiny guest's ELF in a bzImage.

The setup header is what a Linux 64-bit bzImage carries (boot protocol
2.15: relocatable, 2M alignment, XLF_KERNEL_64, payload_offset/length), the
payload is the ELF compressed with COMPRESSION (xz, zstd, gzip or bzip2)
followed by its length as a 32-bit little-endian word, as the kernel's build
appends it. The preferred address is the ELF's own load address, so vmm's
host-side decompression boots the guest as if it were a kernel's vmlinux
(without relocation tables: at its link address). There is no real
decompressor in the image: only the host-side path can boot it.
"""
import bz2
import gzip
import lzma
import struct
import subprocess
import sys


def compress(data, how):
    if how == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    if how == "gzip":
        return gzip.compress(data, 9)
    if how == "bzip2":
        return bz2.compress(data)
    sys.exit("mkbzimage: unknown compression " + how)


def main():
    elf_path, out_path, how = sys.argv[1:4]
    elf = open(elf_path, "rb").read()
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phnum, = struct.unpack_from("<H", elf, 0x38)
    load = min(struct.unpack_from("<Q", elf, phoff + i * 56 + 24)[0] for i in range(phnum)
               if struct.unpack_from("<I", elf, phoff + i * 56)[0] == 1)
    payload = compress(elf, how) + struct.pack("<I", len(elf))
    setup_sects = 1
    pm = bytearray(0x200) + payload  # a stub where startup_64 would be, then the payload
    pm += bytes(-len(pm) % 16)
    img = bytearray((setup_sects + 1) * 512)
    img[0x1f1] = setup_sects
    struct.pack_into("<I", img, 0x1f4, len(pm) // 16)        # syssize
    struct.pack_into("<H", img, 0x1fe, 0xAA55)                # boot_flag
    img[0x200], img[0x201] = 0xEB, 0x66                       # jmp past the header
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x020F)                # version 2.15
    img[0x211] = 0x01                                         # loadflags: LOADED_HIGH
    struct.pack_into("<I", img, 0x22C, 0x7FFFFFFF)            # initrd_addr_max
    struct.pack_into("<I", img, 0x230, 0x200000)              # kernel_alignment
    img[0x234] = 1                                            # relocatable_kernel
    img[0x235] = 21                                           # min_alignment
    struct.pack_into("<H", img, 0x236, 0x1)                   # xloadflags: XLF_KERNEL_64
    struct.pack_into("<I", img, 0x238, 2047)                  # cmdline_size
    struct.pack_into("<I", img, 0x248, 0x200)                 # payload_offset
    struct.pack_into("<I", img, 0x24C, len(payload))          # payload_length
    struct.pack_into("<Q", img, 0x258, load)                  # pref_address
    struct.pack_into("<I", img, 0x260, max(0x200000, len(pm)))  # init_size
    open(out_path, "wb").write(bytes(img) + bytes(pm))


main()

#!/usr/bin/env python3
"""Writes the seed corpora of the fastknn fuzz targets (tests/fuzz/fuzz_*.cpp).

Usage: make_seeds.py OUT_DIR

Creates OUT_DIR/idx, OUT_DIR/npy and OUT_DIR/vecs, each holding small valid (and a few
near-valid) files in the targets' input format: one mode byte, then the file contents.
Mode byte: bit 0 = the target gzip-compresses the contents before writing them; bits 1..7 =
loader selector (see the comment at the top of each fuzz_*.cpp). Standard library only; when numpy
is importable, files written by numpy.save itself are added too. Output is deterministic.
"""

import gzip
import io
import os
import shutil
import struct
import sys


def mode(selector, gz=False):
    return bytes([(selector << 1) | (1 if gz else 0)])


class Corpus:
    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        self.count = 0

    def add(self, name, selector, contents, gz=False):
        path = os.path.join(self.dir, "%s.sel%d%s" % (name, selector, ".gz" if gz else ""))
        with open(path, "wb") as f:
            f.write(mode(selector, gz) + contents)
        self.count += 1


def gz_bytes(data):
    # mtime=0 keeps the output deterministic.
    return gzip.compress(data, compresslevel=6, mtime=0)


# ---------------------------------------------------------------- IDX

IDX_TYPES = {  # code: (struct format, sample values)
    0x08: ("B", [0, 1, 127, 128, 255]),
    0x09: ("b", [-128, -1, 0, 1, 127]),
    0x0B: ("h", [-32768, -1, 0, 1, 32767]),
    0x0C: ("i", [-2**31, -1, 0, 1, 2**31 - 1]),
    0x0D: ("f", [-1.5, 0.0, 0.25, 3.0e38, float("inf")]),
    0x0E: ("d", [-1.5, 0.0, 1e-300, 1e300, float("nan")]),
}


def idx_file(code, dims, values=None):
    fmt, sample = IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    if values is None:
        values = [sample[i % len(sample)] for i in range(count)]
    head = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + struct.pack(">%d%s" % (count, fmt), *values)


def idx_seeds(root):
    c = Corpus(root, "idx")
    # Selectors: 0 read_idx, 1 read_idx_images, 2 read_idx_labels, 3 read_matrix.
    images3 = idx_file(0x08, [3, 4, 4], [(7 * i) % 256 for i in range(48)])
    images2 = idx_file(0x08, [4, 3], [(11 * i) % 256 for i in range(12)])
    labels = idx_file(0x08, [5], [0, 9, 3, 3, 7])
    for sel in (0, 1, 3):
        c.add("idx3_ubyte_images", sel, images3)
        c.add("idx3_ubyte_images", sel, images3, gz=True)
        c.add("idx2_ubyte_images", sel, images2)
    for sel in (0, 2, 3):
        c.add("idx1_ubyte_labels", sel, labels)
        c.add("idx1_ubyte_labels", sel, labels, gz=True)
    for code in sorted(IDX_TYPES):
        for dims in ([5], [5, 2], [1, 5, 1, 1]):
            f = idx_file(code, dims)
            name = "type%02x_%dd" % (code, len(dims))
            c.add(name, 0, f)
            c.add(name, 3, f)
        c.add("type%02x_2d" % code, 0, idx_file(code, [5, 2]), gz=True)
    c.add("empty_dim", 0, idx_file(0x08, [0, 28, 28]))
    c.add("empty_dim", 1, idx_file(0x08, [0, 28, 28]))
    # Real gzip files written raw: the fuzzer mutates the compressed stream itself.
    c.add("gzip_file_images", 1, gz_bytes(images3))
    c.add("gzip_file_labels", 2, gz_bytes(labels))
    c.add("gzip_file_truncated", 0, gz_bytes(images3)[:-6])
    # Near-valid: one byte short, one byte long, wrong type for images, header only.
    c.add("truncated", 0, images3[:-1])
    c.add("trailing", 0, images3 + b"\x00")
    c.add("wrong_type_images", 1, idx_file(0x0D, [2, 2, 2]))
    c.add("header_only", 0, bytes([0, 0, 0x08, 3]))
    return c.count


# ---------------------------------------------------------------- npy

NPY_DTYPES = {  # descr: (struct format, sample values)
    "<f4": ("f", [0.0, -1.5, 2.25, 1e30, float("nan"), float("-inf")]),
    "<f8": ("d", [0.0, -1.5, 1e-300, 5e-324, 3.0, float("inf")]),
    "|u1": ("B", [0, 1, 2, 127, 128, 255]),
    "|i1": ("b", [-128, -1, 0, 1, 2, 127]),
    "<i4": ("i", [-2**31, -1, 0, 1, 7, 2**31 - 1]),
    "<i8": ("q", [-2**63, -1, 0, 1, 2**53 + 1, 2**63 - 1]),
}


def npy_file(descr, shape, version=1, values=None, header=None):
    fmt, sample = NPY_DTYPES[descr]
    count = 1
    for d in shape:
        count *= d
    if values is None:
        values = [sample[i % len(sample)] for i in range(count)]
    if header is None:
        shape_text = "(%s)" % (", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    len_bytes = 2 if version == 1 else 4
    unpadded = 6 + 2 + len_bytes + len(header) + 1
    header = header + " " * ((64 - unpadded % 64) % 64) + "\n"
    encoded = header.encode("latin-1" if version < 3 else "utf-8")
    length = struct.pack("<H" if version == 1 else "<I", len(encoded))
    data = struct.pack("<%d%s" % (count, fmt), *values)
    return b"\x93NUMPY" + bytes([version, 0]) + length + encoded + data


def npy_seeds(root):
    c = Corpus(root, "npy")
    # Selectors: 0 read_npy<float>, 1 <int64_t>, 2 <double>, 3 <int32_t>, 4 read_matrix.
    for descr in sorted(NPY_DTYPES):
        tag = descr.strip("<|")
        for shape in ((6,), (3, 2)):
            f = npy_file(descr, shape)
            for sel in range(5):
                c.add("%s_%dd_v1" % (tag, len(shape)), sel, f)
    # Integral floats convert to the integer types; a huge double does not fit float32.
    for sel in (1, 3):
        c.add("f4_integral", sel, npy_file("<f4", (2, 2), values=[0.0, -7.0, 2.0**24, -2.0**31]))
        c.add("f8_integral", sel, npy_file("<f8", (4,), values=[0.0, -7.0, 2.0**53, -2.0**31]))
    c.add("f8_huge", 0, npy_file("<f8", (2,), values=[1e300, -1e300]))
    for version in (2, 3):
        for descr in ("<f4", "<i8"):
            f = npy_file(descr, (2, 3), version=version)
            for sel in (0, 1):
                c.add("%s_2d_v%d" % (descr.strip("<|"), version), sel, f)
    for sel in (0, 1):
        c.add("f4_2d_v1", sel, npy_file("<f4", (3, 2)), gz=True)
        c.add("i8_1d_v1", sel, npy_file("<i8", (6,)), gz=True)
    c.add("gzip_file_f4", 0, gz_bytes(npy_file("<f4", (3, 2))))
    # Header dialects the parser accepts: other key order, double quotes, Python 2 longs, '<u1',
    # an unknown key, an empty array.
    c.add("reordered_keys", 0, npy_file("<f4", (3, 2), header=
          "{\"shape\": (3L, 2L), \"fortran_order\": False, \"descr\": \"<f4\", 'extra': 'x'}"))
    c.add("u1_little", 3, npy_file("|u1", (2, 3), header=
          "{'descr': '<u1', 'fortran_order': False, 'shape': (2, 3)}"))
    c.add("empty_rows", 0, npy_file("<f4", (0, 4)))
    # Rejected on purpose (to seed those branches): Fortran order, big-endian, 3-D, 0-D.
    c.add("fortran", 0, npy_file("<f4", (2, 3), header=
          "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"))
    c.add("big_endian", 0, npy_file("<f4", (6,), header=
          "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }"))
    c.add("three_d", 0, npy_file("<f4", (1, 2, 3)))
    c.add("scalar", 0, npy_file("<f4", (1,), header=
          "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"))
    c.add("structured", 0, npy_file("<f4", (1,), header=
          "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"))
    try:
        import numpy as np
    except ImportError:
        return c.count
    for dt in ("float32", "float64", "uint8", "int8", "int32", "int64"):
        for shape in ((5,), (2, 3)):
            buf = io.BytesIO()
            np.save(buf, (np.arange(int(np.prod(shape))) * 3 - 4).astype(dt).reshape(shape))
            for sel in (0, 1):
                c.add("numpy_%s_%dd" % (dt, len(shape)), sel, buf.getvalue())
    return c.count


# ---------------------------------------------------------------- vecs

def vecs_file(fmt, d, rows, values):
    out = b""
    for r in range(rows):
        out += struct.pack("<i", d)
        out += struct.pack("<%d%s" % (d, fmt), *[values[(r * d + i) % len(values)] for i in range(d)])
    return out


def vecs_seeds(root):
    c = Corpus(root, "vecs")
    # Selectors: 0 read_fvecs, 1 read_ivecs, 2 read_bvecs, 3..5 read_matrix(.fvecs/.ivecs/.bvecs).
    kinds = [("fvecs", "f", [0.5, -1.0, 3.0e38, float("nan")]),
             ("ivecs", "i", [0, -1, 2**31 - 1, -2**31, 7]),
             ("bvecs", "B", [0, 1, 128, 255])]
    for k, (name, fmt, values) in enumerate(kinds):
        for d, rows in ((4, 3), (1, 1), (7, 2)):
            f = vecs_file(fmt, d, rows, values)
            for sel in (k, k + 3):
                c.add("%s_d%d_n%d" % (name, d, rows), sel, f)
        f = vecs_file(fmt, 4, 3, values)
        c.add("%s_d4_n3" % name, k, f, gz=True)
        c.add("gzip_file_%s" % name, k, gz_bytes(f))
        c.add("%s_truncated" % name, k, f[:-1])
        c.add("%s_inconsistent" % name, k, f[:len(f) // 3] + vecs_file(fmt, 5, 1, values))
    return c.count


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py OUT_DIR")
    root = sys.argv[1]
    counts = {"idx": idx_seeds(root), "npy": npy_seeds(root), "vecs": vecs_seeds(root)}
    print("fastknn fuzz seeds in %s: %s" % (root, ", ".join("%s %d" % kv for kv in counts.items())))


if __name__ == "__main__":
    main()

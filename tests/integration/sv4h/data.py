"""Deterministic bodies of any size, generated block by block (never held whole).

Each 1 MiB block is a random pad (fixed per seed) whose first 8 bytes are the block
index, so a dropped, repeated or reordered block changes the digest.
"""
import hashlib
import random
import struct

BLOCK = 1 << 20
_PADS = {}


def _pad(seed):
    pad = _PADS.get(seed)
    if pad is None:
        pad = random.Random(seed).randbytes(BLOCK)
        _PADS[seed] = pad
    return pad


def blocks(size, seed=1, block=BLOCK):
    """Yield `size` bytes in pieces of at most `block` (<= 1 MiB) bytes."""
    pad = _pad(seed)
    offset, current, full = 0, -1, b""
    while offset < size:
        i, within = divmod(offset, BLOCK)
        if i != current:
            current, full = i, struct.pack(">Q", i) + pad[8:]
        n = min(block, BLOCK - within, size - offset)
        yield full[within:within + n] if n != BLOCK else full
        offset += n


def sha256(size, seed=1):
    h = hashlib.sha256()
    for b in blocks(size, seed):
        h.update(b)
    return h.hexdigest()


def write_file(path, size, seed=1):
    with open(path, "wb") as f:
        for b in blocks(size, seed):
            f.write(b)
    return path


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                return h.hexdigest()
            h.update(b)

"""`load_digits` against the plain way (PIL, one file at a time): the same tensor and the same errors.

`load_digits` decodes MNIST's 8-bit grayscale PNGs with torchvision and leaves anything else to PIL; these tests check
on 5,000 real digits and hundreds of damaged files that the fast path never gives anything PIL would not.
"""
from __future__ import annotations
import random, zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_basics.data import image_files, load_digits, read_digit


def plain_load(folder:Path) -> torch.Tensor:
    "The reference: `read_digit` (PIL) on every file in name order"
    files = image_files(folder)
    if not files: raise ValueError(f"{folder}: no images in this folder")
    return torch.from_numpy(np.stack([read_digit(f) for f in files])).float()/255


def outcome(fn, *args):
    try: return ('ok', fn(*args))
    except ValueError as e: return ('error', str(e))


def same(a, b) -> bool:
    return a[0] == b[0] and (torch.equal(a[1], b[1]) if a[0] == 'ok' else a[1] == b[1])


@pytest.fixture(scope='module')
def all_digits(tmp_path_factory):
    "5,000 real test-set digits written with PIL into one folder"
    from mnist_basics.sources import mnist_arrays
    X = mnist_arrays('test')[0][:5000]
    d = tmp_path_factory.mktemp('all')/'digits'
    d.mkdir()
    for i, x in enumerate(X): Image.fromarray(x).save(d/f'{i:04d}.png')
    return d, X


def test_every_digit_decodes_exactly(all_digits):
    d, X = all_digits
    got = load_digits(d)
    assert torch.equal(got, torch.from_numpy(X.copy()).float()/255)
    assert torch.equal(got, plain_load(d))


def damage(data:bytes, rng:random.Random) -> bytes:
    "One random kind of damage to a PNG file"
    b = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0: b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)             # one bit anywhere
    elif kind == 1: b = b[:rng.randrange(len(b))]                                # cut short
    elif kind == 2: b[rng.randrange(8, 33)] = rng.randrange(256)                 # the header
    elif kind == 3:                                                               # the pixel data, checksum fixed
        i = 33 + 8 + rng.randrange(max(1, len(b) - 33 - 8 - 12 - 4))
        b[i] ^= 1 << rng.randrange(8)
        n = int.from_bytes(b[33:37], 'big')
        if b[37:41] == b'IDAT' and 41 + n + 4 <= len(b): b[41+n:45+n] = zlib.crc32(bytes(b[37:41+n])).to_bytes(4, 'big')
    elif kind == 4: b = b[:-12]                                                   # no IEND
    elif kind == 5: b = b[:33] + b'\0\0\0\x04gAMA\0\0\xb1\x8f' + zlib.crc32(b'gAMA\0\0\xb1\x8f').to_bytes(4, 'big') + b[33:]  # an extra (harmless) chunk
    else: b = b[:33] + b'\0\0\0\x01PLTE\0' + zlib.crc32(b'PLTE\0').to_bytes(4, 'big') + b[33:]  # a critical chunk that does not belong
    return bytes(b)


def test_damaged_files_behave_as_with_pil(all_digits, tmp_path):
    "Whatever the damage, load_digits gives what the plain way gives: the same pixels or the same error message"
    d, _ = all_digits
    sources = [(d/f'{i:04d}.png').read_bytes() for i in range(0, 5000, 250)]
    rng = random.Random(0)
    kinds = {'ok': 0, 'error': 0}
    for case in range(400):
        folder = tmp_path/f'case{case}'
        folder.mkdir()
        (folder/'a.png').write_bytes(rng.choice(sources))
        (folder/'b.png').write_bytes(damage(rng.choice(sources), rng))
        got, want = outcome(load_digits, folder, (28, 28)), outcome(plain_load, folder)
        assert same(got, want), (case, got[0], want[0], got[1] if got[0] == 'error' else '', want[1] if want[0] == 'error' else '')
        kinds[want[0]] += 1
    assert kinds['ok'] > 50 and kinds['error'] > 50, kinds  # both outcomes were really tried

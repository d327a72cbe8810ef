"""`load_digits` against the plain way (PIL, one file at a time): same tensor, same errors, and a cache that never lies.

The notebook 00_data shows and tests each piece; these tests go wider: every embedded digit, thousands of damaged
files, two threads, several processes loading one folder at once, files swapped behind the cache's back.
"""
from __future__ import annotations
import os, random, subprocess, sys, zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_basics.data import (CACHE_DIR, _decode_files, _image_names, cache_file, cache_status, image_files,
                               load_digits, read_digit)
from conftest import age


def plain_load(folder:Path) -> torch.Tensor:
    "The reference: `read_digit` on every file in name order, as load_digits did before it read PNGs itself"
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
    "The 5000 embedded digits written with PIL (as build_embedded writes them) into one folder, dated an hour back"
    from mnist_basics.data import embedded_digits
    X, _ = embedded_digits()
    d = tmp_path_factory.mktemp('all')/'digits'
    d.mkdir()
    for i, x in enumerate(X): Image.fromarray(x).save(d/f'{i:04d}.png')
    age(d)
    return d, X


def test_every_embedded_digit_decodes_exactly(all_digits):
    d, X = all_digits
    got = load_digits(d, cache=False)
    assert torch.equal(got, torch.from_numpy(X.copy()).float()/255)
    assert torch.equal(got, plain_load(d))


def test_threads_change_nothing(all_digits):
    d, X = all_digits
    names = _image_names(d)
    one, stamps1 = _decode_files(d, names, (28, 28), 1)
    two, stamps2 = _decode_files(d, names, (28, 28), 2)
    assert np.array_equal(one, X) and np.array_equal(two, X) and stamps1 == stamps2


def test_cached_load_of_5000(all_digits):
    d, X = all_digits
    first = load_digits(d)
    assert cache_status(d) == 'fresh'
    assert torch.equal(load_digits(d), first)
    assert not [p for p in cache_file(d).parent.iterdir() if '.tmp-' in p.name]


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
        got, want = outcome(load_digits, folder, (28, 28), False), outcome(plain_load, folder)
        assert same(got, want), (case, got[0], want[0], got[1] if got[0] == 'error' else '', want[1] if want[0] == 'error' else '')
        kinds[want[0]] += 1
    assert kinds['ok'] > 50 and kinds['error'] > 50, kinds  # both outcomes were really tried


def test_swapped_files_invalidate_the_cache(tmp_path, digits):
    "Two files swapped by renaming keep their names, sizes and modification times: their inodes (and change times) tell"
    X, _ = digits
    d = tmp_path/'3'; d.mkdir()
    for i in range(4): Image.fromarray(X[i]).save(d/f'{i}.png', compress_level=0)  # stored, not compressed: equal sizes
    assert len({p.stat().st_size for p in d.iterdir()}) == 1
    age(d)
    before = load_digits(d)
    assert cache_status(d) == 'fresh'
    os.rename(d/'0.png', d/'x'); os.rename(d/'1.png', d/'0.png'); os.rename(d/'x', d/'1.png')
    assert len({p.stat().st_mtime_ns for p in d.iterdir()}) == 1
    assert cache_status(d) == 'stale'
    after = load_digits(d)
    assert torch.equal(after, plain_load(d)) and torch.equal(after[0], before[1]) and torch.equal(after[1], before[0])


def test_several_processes_at_once(all_digits, tmp_path):
    "Two processes load one fresh folder at the same moment: all get the right tensor, one complete cache remains"
    d, X = all_digits
    work = tmp_path/'shared'/'digits'
    work.mkdir(parents=True)
    for f in image_files(d)[:1500]: (work/f.name).write_bytes(f.read_bytes())
    age(work)
    code = ("import sys, hashlib; from mnist_basics.data import load_digits\n"
            "t = load_digits(sys.argv[1]); print(hashlib.sha256(t.mul(255).round().byte().numpy().tobytes()).hexdigest())")
    procs = [subprocess.Popen([sys.executable, '-c', code, str(work)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    import hashlib
    want = hashlib.sha256(X[:1500].tobytes()).hexdigest()
    assert [o for o, _ in outs] == [want + "\n"]*2, [e for _, e in outs]
    assert all(p.returncode == 0 for p in procs)
    assert cache_status(work) == 'fresh'
    assert sorted(p.name for p in cache_file(work).parent.iterdir()) == ['digits.bin']

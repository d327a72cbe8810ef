"""`load_digits` against the chapter's own way (`torch.stack([tensor(Image.open(o)) for o in files]).float()/255`):
the same tensor on 3,000 real digits, and on hundreds of damaged files either the same tensor or an error naming the
damaged file."""
from __future__ import annotations
import random, zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_basics.data import load_digits


def chapter_load(folder:Path) -> torch.Tensor:
    "The reference: the chapter's list comprehension on fastai's `get_image_files(folder).sorted()`"
    from fastai.vision.all import get_image_files, tensor
    return torch.stack([tensor(Image.open(o)) for o in get_image_files(folder).sorted()]).float()/255


def outcome(fn, *args):
    try: return ('ok', fn(*args))
    except Exception as e: return ('error', f'{type(e).__name__}: {e}')


@pytest.fixture(scope='module')
def all_digits(tmp_path_factory):
    "3,000 real test-set digits written with PIL into one folder"
    from mnist_basics.data import mnist_arrays
    X = mnist_arrays('test')[0][:3000]
    d = tmp_path_factory.mktemp('all')/'digits'
    d.mkdir()
    for i, x in enumerate(X): Image.fromarray(x).save(d/f'{i:04d}.png')
    return d, X


def test_every_digit_decodes_exactly(all_digits):
    d, X = all_digits
    got = load_digits(d)
    assert got.dtype == torch.float32 and got.shape == (3000, 28, 28)
    assert torch.equal(got, torch.tensor(X).float()/255)
    assert torch.equal(got, chapter_load(d))


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


def reference(folder:Path) -> torch.Tensor:
    "The plain way, file by file: PIL, converted to 8-bit grayscale if it is not, stacked, divided by 255"
    from fastai.vision.all import get_image_files
    arrays = []
    for o in get_image_files(folder).sorted():
        im = Image.open(o)
        arrays.append(np.asarray(im if im.mode == 'L' else im.convert('L')))
    return torch.tensor(np.stack(arrays)).float()/255


def test_damaged_files(all_digits, tmp_path):
    """Whatever the damage: where the plain way loads the folder, load_digits gives the same tensor; where it fails
    (a file PIL cannot decode, or a header that now says another size), load_digits raises a ValueError naming the
    damaged file. Both outcomes are really tried."""
    d, _ = all_digits
    sources = [(d/f'{i:04d}.png').read_bytes() for i in range(0, 3000, 150)]
    rng = random.Random(0)
    kinds = {'ok': 0, 'error': 0}
    for case in range(200):
        folder = tmp_path/f'case{case}'
        folder.mkdir()
        (folder/'a.png').write_bytes(rng.choice(sources))
        (folder/'b.png').write_bytes(damage(rng.choice(sources), rng))
        got, want = outcome(load_digits, folder), outcome(reference, folder)
        refused = want[0] == 'error' or Image.open(folder/'b.png').mode[0] in 'IF'  # 16-bit or float: refused on purpose
        if refused: assert got[0] == 'error' and got[1].startswith(f"ValueError: {folder/'b.png'}: "), (case, got, want)
        else: assert got[0] == 'ok' and torch.equal(got[1], want[1]), (case, got)
        kinds['error' if refused else 'ok'] += 1
    assert kinds['ok'] > 20 and kinds['error'] > 20, kinds


def test_conversions_give_the_right_pixels(tmp_path, digits):
    "Colour, alpha, palette and BMP files are turned into the same 8-bit grayscale; 16-bit and float ones are refused"
    g = digits[0][0]
    cases = {'rgb.png': Image.fromarray(np.stack([g, g, g], -1)),
             'rgba.png': Image.fromarray(np.stack([g, g, g, np.full_like(g, 128)], -1), 'RGBA'),
             'la.png': Image.fromarray(np.stack([g, np.zeros_like(g)], -1), 'LA'),
             'palette.gif': Image.fromarray(g).convert('P'),
             'gray.bmp': Image.fromarray(g)}
    for name, im in cases.items():
        (tmp_path/name).mkdir(); im.save(tmp_path/name/name)
        assert torch.equal(load_digits(tmp_path/name)[0], torch.tensor(g).float()/255), name
    coloured = np.stack([g, g//2, 255 - g], -1)
    (tmp_path/'colour').mkdir(); Image.fromarray(coloured).save(tmp_path/'colour'/'c.png')
    assert torch.equal(load_digits(tmp_path/'colour')[0], torch.tensor(np.asarray(Image.fromarray(coloured).convert('L'))).float()/255)
    for name, arr, mode in (('16bit.png', g.astype(np.uint16)*257, 'I;16'), ('float.tif', g.astype(np.float32), 'F')):
        (tmp_path/name).mkdir(); Image.fromarray(arr).save(tmp_path/name/name)
        with pytest.raises(ValueError) as e: load_digits(tmp_path/name)
        assert str(e.value).startswith(f"{tmp_path/name/name}: not a readable image ({mode} pixels"), str(e.value)


def test_a_folder_mixing_sizes_names_both_files(tmp_path, digits):
    X = digits[0]
    for i in range(3): Image.fromarray(X[i]).save(tmp_path/f'{i}.png')
    Image.fromarray(np.zeros((32, 30), np.uint8)).save(tmp_path/'1.png')
    with pytest.raises(ValueError) as e: load_digits(tmp_path)
    assert str(e.value) == f"{tmp_path/'1.png'}: image is 30x32, but 0.png in {tmp_path} is 28x28"

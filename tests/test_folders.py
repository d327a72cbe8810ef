"""Learners' own folders: every kind of bad or odd input gets a clear answer and leaves the files as they were.

Each case is tried three ways: the Python helpers (`check_layout`, `load_split`), and the two commands a learner
points at a folder, `mnist-basics data --path DIR` and `mnist-basics baseline --path DIR`.
A case either works (with the right counts) or fails with exit status 2 and one line on stderr that
names the file or folder at fault and says what is wrong.
"""
from __future__ import annotations
import json, os, shutil, subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_basics.data import check_layout, load_digits, load_split

from conftest import EXE, one_error_line, snapshot

COUNTS = {'train/3': 6, 'train/7': 6, 'valid/3': 3, 'valid/7': 3}


EXPECTED_ERRORS = (OSError, ValueError)  # what `mnist-basics` turns into one line and exit status 2

def image_files(folder:Path) -> list[Path]: return sorted(p for p in folder.iterdir() if p.suffix.lower() == '.png')

def first(folder:Path, i:int=0) -> Path: return image_files(folder)[i]

def gray(fn:Path) -> np.ndarray: return np.asarray(Image.open(fn))

# ---------------------------------------------------------------------------------------------------
# The cases. Each takes a fresh 6+3-per-class folder `s` and returns (the path to give, what must happen):
# ('error', [strings the one-line message must hold]) or ('ok', {split/class: image count}, same_as_clean)
# where same_as_clean says the pixels are unchanged, so the baseline must score exactly as on `s` untouched.

def missing_folder(s):
    p = s.parent/'not here'
    return p, ('error', [str(p), 'no such folder'])

def file_instead_of_folder(s):
    f = first(s/'train'/'3')
    return f, ('error', [str(f), 'is a file, not a folder'])

def class_folder_is_a_file(s):
    shutil.rmtree(s/'train'/'3'); (s/'train'/'3').write_bytes(b'half-copied')
    return s, ('error', [str(s), "classes differ between 'train' ['7'] and 'valid' ['3', '7']"])

def empty_class_folder(s):
    shutil.rmtree(s/'valid'/'7'); (s/'valid'/'7').mkdir()
    return s, ('error', [str(s/'valid'/'7'), 'no images in this class folder'])

def class_folder_with_only_junk(s):
    shutil.rmtree(s/'valid'/'7'); (s/'valid'/'7').mkdir()
    (s/'valid'/'7'/'.DS_Store').write_bytes(b'\0\0\0\1Bud1'); (s/'valid'/'7'/'notes.txt').write_text('todo')
    return s, ('error', [str(s/'valid'/'7'), 'no images'])

def no_train(s):
    shutil.rmtree(s/'train')
    return s, ('error', [str(s), 'expected the sub-folders train and valid or training and testing'])

def no_valid(s):
    shutil.rmtree(s/'valid')
    return s, ('error', [str(s), 'expected the sub-folders train and valid or training and testing'])

def split_without_classes(s):
    shutil.rmtree(s/'valid'); (s/'valid').mkdir()
    return s, ('error', [str(s/'valid'), 'no class folders'])

def classes_differ(s):
    (s/'valid'/'7').rename(s/'valid'/'8')
    return s, ('error', [str(s), 'classes differ', "'7'", "'8'"])

def truncated_png(s):
    f = first(s/'train'/'3', 2); data = f.read_bytes(); f.write_bytes(data[:len(data)//2])
    return s, ('error', [str(f), 'not a readable image'])

def corrupt_png(s):
    f = first(s/'valid'/'7', 1); data = bytearray(f.read_bytes())
    for i in range(60, 80): data[i] ^= 0xFF  # inside the compressed pixels: the checksum no longer matches
    f.write_bytes(bytes(data))
    return s, ('error', [str(f), 'not a readable image'])

def zero_byte_png(s):
    f = first(s/'train'/'7'); f.write_bytes(b'')
    return s, ('error', [str(f), 'not a readable image'])

def text_named_png(s):
    f = s/'train'/'3'/'9999.png'; f.write_text('this is not a picture')
    return s, ('error', [str(f), 'not a readable image'])

def image_32x32(s):
    f = first(s/'train'/'3', 1); Image.fromarray(np.zeros((32, 32), np.uint8)).save(f)
    return s, ('error', [str(f), 'image is 32x32, but', '28x28'])

def float_tiff(s):
    f = s/'valid'/'3'/'9999.tif'; Image.fromarray(np.zeros((28, 28), np.float32)).save(f)
    return s, ('error', [str(f), 'not a readable image (F pixels'])

def hidden_and_other_files(s):
    for d in [s, s/'train', s/'valid', *s.glob('*/*')]:
        (d/'.DS_Store').write_bytes(b'\0\0\0\1Bud1\0')
        (d/'Thumbs.db').write_bytes(b'\xd0\xcf\x11\xe0')
        (d/'.ipynb_checkpoints').mkdir()
        (d/'.ipynb_checkpoints'/'x-checkpoint.png').write_bytes(b'junk')
    (s/'train'/'3'/'notes.txt').write_text('my notes')
    (s/'train'/'3'/'desktop.ini').write_text('[.ShellClassInfo]')
    (s/'train'/'3'/'._0001.png').write_bytes(b'\0\5\26\7AppleDouble junk')  # macOS resource fork
    (s/'train'/'7'/'old.png').mkdir()  # a folder with an image's name
    (s/'valid'/'3'/'archive').mkdir(); shutil.copy(first(s/'valid'/'3'), s/'valid'/'3'/'archive'/'copy.png')
    return s, ('ok', {**COUNTS, 'valid/3': 4}, False)  # fastai's get_image_files looks into sub-folders too

def colour_image(s):
    f = first(s/'train'/'3'); g = gray(f)
    Image.fromarray(np.stack([g, g, g], -1)).save(f)  # RGB, every channel the same
    Image.fromarray(np.stack([g, g//2, 255 - g], -1)).save(s/'train'/'3'/'9999.png')  # a truly coloured one
    return s, ('ok', {**COUNTS, 'train/3': 7}, False)

def image_16_bit(s):
    f = first(s/'valid'/'7'); g = gray(f)
    Image.fromarray(g.astype(np.uint16)*257).save(f)
    return s, ('error', [str(f), 'not a readable image (I;16 pixels'])

def image_with_alpha(s):
    f, f2 = first(s/'train'/'7'), first(s/'train'/'7', 1)
    g, g2 = gray(f), gray(f2)
    Image.fromarray(np.stack([g, g, g, np.full_like(g, 255)], -1), 'RGBA').save(f)
    Image.fromarray(np.stack([g2, (g2 > 0).astype(np.uint8)*255], -1), 'LA').save(f2)
    return s, ('ok', COUNTS, True)

def spaces_and_non_ascii_names(s):
    for split in ('train', 'valid'):
        (s/split/'7').rename(s/split/'sieben ö')
        for i, f in enumerate(image_files(s/split/'3')): f.rename(f.with_name(f'drei Ziffer {i:02d} – é ü 三.png'))
    return s, ('ok', {'train/3': 6, 'train/sieben ö': 6, 'valid/3': 3, 'valid/sieben ö': 3}, True)

def upper_case_suffixes(s):
    for f in image_files(s/'train'/'7'): f.rename(f.with_suffix('.PNG'))
    return s, ('ok', COUNTS, True)

def symlinked_folder(s):
    link = s.parent/'link to sample'; link.symlink_to(s, target_is_directory=True)
    return link, ('ok', COUNTS, True)

def symlinked_class_folder(s):
    elsewhere = s.parent/'elsewhere'; shutil.move(s/'valid'/'3', elsewhere)
    (s/'valid'/'3').symlink_to(elsewhere, target_is_directory=True)
    return s, ('ok', COUNTS, True)

CASES = [missing_folder, file_instead_of_folder, class_folder_is_a_file, empty_class_folder,
         class_folder_with_only_junk, no_train, no_valid, split_without_classes, classes_differ,
         truncated_png, corrupt_png, zero_byte_png, text_named_png, image_32x32, float_tiff,
         hidden_and_other_files, colour_image, image_16_bit, image_with_alpha, spaces_and_non_ascii_names,
         upper_case_suffixes, symlinked_folder, symlinked_class_folder]


@pytest.fixture(params=CASES, ids=lambda f: f.__name__)
def case(request, make_sample):
    s = make_sample()
    clean = make_sample('clean')
    path, expect = request.param(s)
    return path, expect, s.parent, clean


def test_python_helpers(case):
    "check_layout + load_split: the right counts, or an expected error naming the culprit"
    path, expect, top, clean = case
    before = snapshot(top)
    if expect[0] == 'error':
        with pytest.raises(EXPECTED_ERRORS) as e:
            check_layout(path)
            for split in ('train', 'valid'): load_split(path, split)
        for part in expect[1]: assert part in str(e.value), (part, str(e.value))
    else:
        counts, same_as_clean = expect[1], expect[2]
        splits, classes = check_layout(path)
        assert splits == ('train', 'valid')
        stacks = {s: load_split(path, s) for s in splits}
        assert {f'{s}/{c}': len(v) for s in splits for c, v in stacks[s].items()} == counts
        assert classes == sorted({k.split('/')[1] for k in counts})
        for v in (v for st in stacks.values() for v in st.values()):
            assert v.dtype == torch.float32 and v.shape[1:] == (28, 28) and 0 <= v.min() and v.max() <= 1
        if same_as_clean:
            for s in splits:
                assert [v.tolist() for v in stacks[s].values()] == [v.tolist() for v in load_split(clean, s).values()]
    assert snapshot(top) == before, "the learner's files changed"


@pytest.mark.parametrize('command', ['baseline', 'data'])
def test_command(case, cli, command):
    "`mnist-basics baseline|data --path DIR`: counts and status 0, or status 2 with one clear line and no traceback"
    path, expect, top, clean = case
    before = snapshot(top)
    status, out, err = cli(command, '--path', path, '--json')
    if expect[0] == 'error':
        line = one_error_line(status, err, command)
        for part in expect[1]: assert part in line, (part, line)
        assert out == ''
    else:
        assert (status, err) == (0, '')
        res = json.loads(out)
        counts = expect[1]
        if command == 'data':
            assert res == {'yours': {'path': str(path), 'source': 'yours', 'splits': ['train', 'valid'],
                                     'classes': sorted({k.split('/')[1] for k in counts}), 'counts': counts}}
        else:
            assert res['n'] == {k.split('/')[1]: n for k, n in counts.items() if k.startswith('valid/')}
            assert res['source'] == 'yours' and all(0 <= a <= 1 for a in res['accuracy'].values())
            if expect[2]: assert list(res['accuracy'].values()) == list(json.loads(cli(command, '--path', clean, '--json')[1])['accuracy'].values())
        status, out, err = cli(command, '--path', path)  # the table, as a learner sees it
        assert (status, err) == (0, '') and out
    assert snapshot(top) == before, "the learner's files changed"


def test_baseline_on_ten_digits_agrees_with_a_direct_computation(make_sample, cli):
    "On a folder of all ten digits laid out like fastai's MNIST, each class's accuracy is what a plain loop finds"
    path = make_sample('ten', classes=[str(d) for d in range(10)], n_train=12, n_valid=6, splits=('training', 'testing'))
    status, out, err = cli('baseline', '--path', path, '--json', '--distance', 'rmse')
    assert (status, err) == (0, '')
    res = json.loads(out)
    load = lambda f: torch.tensor(np.stack([gray(o) for o in image_files(f)])).float()/255
    ideals = [load(path/'training'/str(d)).mean(0) for d in range(10)]
    for d in range(10):
        right = sum(int(np.argmin([((x - m)**2).mean().sqrt().item() for m in ideals])) == d for x in load(path/'testing'/str(d)))
        assert res['accuracy'][str(d)] == pytest.approx(right/6, abs=1e-6), d


def test_train_on_a_bad_folder(cli, make_sample):
    "`train --path`: a missing folder, a single class and a damaged file each give one line naming the culprit"
    s = make_sample(classes=('3',))
    line = one_error_line(*cli('train', '--path', s)[::2], 'train')
    assert line == f"mnist-basics train: error: {s}: needs at least two classes to learn from, found ['3']"
    line = one_error_line(*cli('train', '--path', s/'nope')[::2], 'train')
    assert line == f"mnist-basics train: error: {s/'nope'}: no such folder"
    s = make_sample('two')
    f = first(s/'valid'/'3'); f.write_bytes(f.read_bytes()[:40])
    line = one_error_line(*cli('train', '--path', s)[::2], 'train')
    assert line.startswith(f"mnist-basics train: error: {f}: not a readable image")


def test_interrupted_command_says_so(cli, monkeypatch, sample):
    import mnist_basics.cli
    def stop(*a, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(mnist_basics.cli, 'load_split', stop)
    status, out, err = cli('baseline', '--path', sample)
    assert status == 130 and err == 'mnist-basics baseline: interrupted\n' and out == ''


def test_unknown_distance_on_the_command_line(capsys, sample):
    "argparse refuses it before anything runs: status 2, the last line names the bad value and the choices"
    from mnist_basics.cli import main
    with pytest.raises(SystemExit) as e: main(['baseline', '--path', str(sample), '--distance', 'l3'])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == '' and 'Traceback' not in err
    last = err.splitlines()[-1]
    assert last.startswith('mnist-basics baseline: error:') and "'l3'" in last and 'l1' in last and 'rmse' in last, err


def test_installed_command_folder_name_not_utf8(tmp_path, digits):
    """A folder whose name is not valid UTF-8 (unpacked from an old zip) still prints its table.

    PYTHONIOENCODING=utf-8:strict gives the command the strict UTF-8 output of a usual desktop locale
    (en_US.UTF-8); under C.UTF-8 Python would quietly write the raw byte instead."""
    from conftest import make_folder
    s = make_folder(Path(os.fsdecode(os.fsencode(tmp_path) + b'/caf\xe9')), *digits)
    r = subprocess.run([str(EXE), 'data', '--path', s], capture_output=True,
                       env={**os.environ, 'PYTHONIOENCODING': 'utf-8:strict'}, timeout=300)
    assert r.returncode == 0 and r.stderr == b'', r.stderr.decode(errors='replace')
    assert b'class' in r.stdout and b'caf' in r.stdout

"""Shared fixtures: a fastai home built offline once per session, small MNIST_SAMPLE-shaped folders made from the real
MNIST digits shipped in the package, a tiny build layout, and ways to run the command."""
from __future__ import annotations
import hashlib, json, os, subprocess, sys, tempfile
from pathlib import Path

# Hypothesis keeps a cache folder in the working directory (the repository): keep it in the temp folder instead.
os.environ.setdefault('HYPOTHESIS_STORAGE_DIRECTORY', os.path.join(tempfile.gettempdir(), 'mnist_basics-hypothesis'))

import numpy as np
import pytest
from PIL import Image

import mnist_basics.data as data
from mnist_basics.data import mnist_arrays

# A build layout of one class of the test set (1,010 files): killing, racing and interrupting builds stays quick.
# It is registered here and in _workers.py (child processes).
TINY = dict(splits={'valid': 'test'}, classes=['3'], labels=True)
data.LAYOUTS['tiny'] = TINY

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent/'mnist-basics'

# A default run in a fresh Python whose every way to the network is refused and recorded: the two MNIST folders, the
# book's `untar_data` lines and `mnist-basics data`, in an empty FASTAI_HOME. Prints what happened as JSON.
OFFLINE = r'''
import contextlib, io, json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args)[:80])
    raise OSError('network refused by the test')
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
try: socket.create_connection(('example.com', 443))  # the patch itself works: this attempt is recorded and refused
except OSError: pass
assert attempts, 'the network patch did not catch a connection'
attempts.clear()
from mnist_basics.data import data_source, mnist_all_digits, mnist_sample
from mnist_basics.cli import main
sample, png = mnist_sample(), mnist_all_digits()
from fastai.data.external import untar_data, URLs
out = io.StringIO()
with contextlib.redirect_stdout(out): status = main(['data', '--json'])
print(json.dumps({'attempts': attempts, 'sample': str(sample), 'png': str(png),
                  'untar_data': [str(untar_data(URLs.MNIST_SAMPLE)), str(untar_data(URLs.MNIST))],
                  'sources': [data_source(sample), data_source(png)], 'status': status, 'data': json.loads(out.getvalue())}))
'''


@pytest.fixture(scope='session')
def offline_home(tmp_path_factory) -> tuple[Path, dict]:
    "A FASTAI_HOME whose two MNIST folders a default run built with the network refused, and that run's report"
    home = tmp_path_factory.mktemp('offline_fastai_home')
    r = subprocess.run([sys.executable, '-c', OFFLINE], capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'FASTAI_HOME': str(home)})
    assert r.returncode == 0, r.stderr[-3000:]
    return home, json.loads(r.stdout.strip().splitlines()[-1])


def use_fastai_home(monkeypatch, home:Path):
    "Point fastai (in this process, whose fastai settings are read once and cached, and in children) at `home`"
    monkeypatch.setenv('FASTAI_HOME', str(home))
    from fastai.data.external import fastai_cfg
    fastai_cfg.cache_clear()


@pytest.fixture(autouse=True)
def _no_real_fastai_home(monkeypatch, tmp_path_factory):
    "No test may build or read data in the real fastai folder (~/.fastai): point FASTAI_HOME somewhere private"
    use_fastai_home(monkeypatch, tmp_path_factory.getbasetemp()/'fastai_home')
    yield
    from fastai.data.external import fastai_cfg
    fastai_cfg.cache_clear()


@pytest.fixture
def real_home(offline_home, monkeypatch) -> Path:
    "FASTAI_HOME set to the session's offline build (the real MNIST_SAMPLE and MNIST folders); tests must not change it"
    use_fastai_home(monkeypatch, offline_home[0])
    return offline_home[0]


@pytest.fixture(scope='session')
def digits():
    "The 10,000 real MNIST test digits shipped in the package (images uint8 (10000, 28, 28), labels)"
    return mnist_arrays('test')


def make_folder(root:Path, X, y, classes=('3', '7'), n_train=6, n_valid=3, splits=('train', 'valid')) -> Path:
    "A folder laid out like MNIST_SAMPLE (or MNIST, with `splits`) holding the first `n_train` + `n_valid` real digits of each class"
    for c in classes:
        idx = np.flatnonzero(y == int(c))
        for s, ids in zip(splits, (idx[:n_train], idx[n_train:n_train + n_valid])):
            d = root/s/c
            d.mkdir(parents=True, exist_ok=True)
            for i in ids: Image.fromarray(X[i]).save(d/f'{i:04d}.png')
    return root


@pytest.fixture
def make_sample(tmp_path, digits):
    "Factory: `make_sample(name, classes=..., n_train=..., n_valid=..., splits=...)` -> a fresh folder under tmp_path"
    X, y = digits
    def make(name='sample', **kw): return make_folder(tmp_path/name, X, y, **kw)
    return make


@pytest.fixture
def sample(make_sample):
    return make_sample()


def snapshot(root:Path) -> dict:
    "Every entry under `root` (not following links) -> what it is and a hash of its bytes"
    out = {}
    root = Path(root)
    if not os.path.lexists(root): return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath)/name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink(): out[rel] = ('link', os.readlink(p))
            elif p.is_dir(): out[rel] = ('dir',)
            else: out[rel] = ('file', hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def folder_digest(path:Path|str) -> str:
    "A SHA-256 of every file's relative name and bytes under `path`, to compare two folders"
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob('*') if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode()); h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def cli(capsys):
    "Run `mnist-basics` in this process: `cli('baseline', '--path', d)` -> (status, stdout, stderr)"
    from mnist_basics.cli import main
    def run(*args):
        capsys.readouterr()
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err
    return run


def run_installed(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    "Run the installed `mnist-basics` command as its own process"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout)


def one_error_line(status:int, err:str, command:str) -> str:
    "Check the command failed the expected way (status 2, one line on stderr, no traceback) and return that line"
    assert status == 2, (status, err)
    assert 'Traceback' not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith('\n'), f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith(f'mnist-basics {command}: error: '), lines[0]
    return lines[0]

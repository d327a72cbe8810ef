"""Building the embedded data and caching loads: interrupted, killed, raced, read-only, and changed under the cache.

Every build here goes to a temporary folder (a `dest` under tmp_path, or FASTAI_HOME pointing to one):
nothing touches ~/.fastai.
"""
from __future__ import annotations
import json, multiprocessing as mp, os, random, shutil, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mnist_basics.data as data
from mnist_basics.data import (CACHE_DIR, MARKER, build_embedded, cache_file, cache_status, check_layout,
                               data_source, folder_digest, image_files, load_digits)

from conftest import age, one_error_line, snapshot

HERE = Path(__file__).resolve().parent
CLASSES = ['3', '7']


@pytest.fixture(scope='session')
def ctx():
    "Child processes forked from a server that has already imported the package and loaded the digits (saves ~5 s each)"
    c = mp.get_context('forkserver')
    c.set_forkserver_preload(['_workers'])  # imports the package and loads the digits
    # Python 3.11's fork server ignores our sys.path when it preloads, so tell it where _workers is by PYTHONPATH
    old = os.environ.get('PYTHONPATH')
    os.environ['PYTHONPATH'] = os.pathsep.join([str(HERE)] + ([old] if old else []))
    try:
        p = c.Process(target=time.sleep, args=(0,)); p.start(); p.join()  # starts the server now
    finally:
        if old is None: del os.environ['PYTHONPATH']
        else: os.environ['PYTHONPATH'] = old
    return c


@pytest.fixture(scope='session')
def clean(tmp_path_factory):
    "The digest of an uninterrupted build, to compare every other build with"
    return folder_digest(build_embedded(tmp_path_factory.mktemp('clean')/'mnist_sample_embedded', CLASSES))


def leftovers(parent:Path, name:str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f'.{name}.tmp-'))


def state(dest:Path, clean:str) -> str:
    "'absent', 'complete' (identical to a clean build) or 'PARTIAL' (anything else under the final name)"
    if not os.path.lexists(dest): return 'absent'
    return 'complete' if data_source(dest) == 'embedded' and folder_digest(dest) == clean else 'PARTIAL'


# ----------------------------------------------------------------------------------- killed builds

def test_killed_at_random_moments(tmp_path, ctx, clean):
    """SIGKILL a build at seeded random moments (every other one while replacing a complete folder with force=True),
    until five builds were really killed part way. The final name never holds a partial folder, and the next call
    always gives a folder identical to a clean build."""
    from _workers import build
    dest = tmp_path/'data'/'mnist_sample_embedded'
    t0 = time.perf_counter()
    p = ctx.Process(target=build, args=(str(dest), CLASSES)); p.start(); p.join()
    full = time.perf_counter() - t0  # how long one build takes in a child, here and now
    assert p.exitcode == 0 and state(dest, clean) == 'complete'
    rng, outcomes, upper = random.Random(20240504), [], full
    while sum(o[2] == -9 for o in outcomes) < 5 and len(outcomes) < 15:
        force = len(outcomes) % 2 == 1
        if not force: shutil.rmtree(dest)
        delay = rng.uniform(0.02, 0.95*upper)
        p = ctx.Process(target=build, args=(str(dest), CLASSES, force)); p.start()
        time.sleep(delay); p.kill(); p.join()
        if p.exitcode == 0: upper = delay  # builds are faster than measured: aim earlier from now on
        after_kill = state(dest, clean)
        outcomes.append((force, round(delay, 2), p.exitcode, after_kill))
        assert after_kill != 'PARTIAL', outcomes
        assert build_embedded(dest, CLASSES) == dest
        assert state(dest, clean) == 'complete', outcomes
        assert check_layout(dest) == CLASSES
    killed = [o for o in outcomes if o[2] == -9]
    assert len(killed) >= 5, f"too few builds were still running when killed: {outcomes} (one build: {full:.2f} s)"
    assert any(o[3] == 'absent' for o in killed), 'no kill caught a build before it was published'
    # a kill leaves the hidden temporary folder of its build beside the data (removed after an hour by later builds)
    print(f"\none build {full:.2f} s; (force, delay, exit code, state after kill): {outcomes}; "
          f"hidden leftovers: {len(leftovers(dest.parent, dest.name))}")


@pytest.mark.parametrize('where,force', [('before-rename', False), ('after-rename', False),
                                         ('before-rename', True), ('between-renames', True), ('after-rename', True)])
def test_killed_at_each_rename(tmp_path, ctx, clean, where, force):
    "Kill exactly at the delicate moments: just before, between and just after the renames that publish a build"
    from _workers import build_and_stop
    dest = tmp_path/'mnist_sample_embedded'
    if force: build_embedded(dest, CLASSES)
    stopped = ctx.Event()
    p = ctx.Process(target=build_and_stop, args=(str(dest), CLASSES, force, where, stopped)); p.start()
    assert stopped.wait(120), 'the child never reached the stopping point'
    p.kill(); p.join()
    assert p.exitcode == -9, 'the build finished without passing the stopping point'
    expected = {('before-rename', False): 'absent', ('after-rename', False): 'complete',
                ('before-rename', True): 'complete', ('between-renames', True): 'absent', ('after-rename', True): 'complete'}
    assert state(dest, clean) == expected[where, force]
    assert build_embedded(dest, CLASSES) == dest and state(dest, clean) == 'complete'


def test_interrupted_in_a_cell(tmp_path, monkeypatch, clean):
    "Ctrl-C (KeyboardInterrupt) half way through writing: no final folder, no temporary folder, next call builds"
    dest = tmp_path/'mnist_sample_embedded'
    real_save, saved = Image.Image.save, []
    def save(self, *a, **kw):
        saved.append(1)
        if len(saved) == 300: raise KeyboardInterrupt
        return real_save(self, *a, **kw)
    monkeypatch.setattr(Image.Image, 'save', save)
    with pytest.raises(KeyboardInterrupt): build_embedded(dest, CLASSES)
    assert not os.path.lexists(dest) and leftovers(tmp_path, dest.name) == []
    monkeypatch.setattr(Image.Image, 'save', real_save)
    assert build_embedded(dest, CLASSES) == dest and state(dest, clean) == 'complete'


def test_folder_without_marker_is_rebuilt_not_trusted(tmp_path, clean):
    "A folder with the final name but no marker (a copy that stopped half way) is replaced by a full build"
    dest = tmp_path/'mnist_sample_embedded'
    build_embedded(dest, CLASSES)
    (dest/MARKER).unlink(); shutil.rmtree(dest/'valid'/'7')
    assert data_source(dest) == 'mnist'
    build_embedded(dest, CLASSES)
    assert state(dest, clean) == 'complete'
    # a marker that promises more files than are there is not trusted either
    for f in image_files(dest/'train'/'3')[:5]: f.unlink()
    assert data_source(dest) == 'mnist'
    build_embedded(dest, CLASSES)
    assert state(dest, clean) == 'complete'


# ------------------------------------------------------------------------------------ concurrency

def test_two_processes_build_at_once(tmp_path, ctx, clean):
    "Two processes released together build the same folder: both succeed and see identical, complete data"
    from _workers import build
    dest = tmp_path/'data'/'mnist_sample_embedded'
    for round_ in range(2):
        if dest.exists(): shutil.rmtree(dest)
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        ps = [ctx.Process(target=build, args=(str(dest), CLASSES, False, barrier, queue)) for _ in range(2)]
        for p in ps: p.start()
        results = [queue.get(timeout=120) for _ in ps]
        for p in ps: p.join(60)
        assert [p.exitcode for p in ps] == [0, 0]
        assert results[0] == results[1] == (str(dest), clean)
        assert leftovers(dest.parent, dest.name) == []


def test_two_processes_load_and_cache_at_once(tmp_path, ctx, make_sample):
    s = make_sample(n_train=50)
    age(s)
    folder = s/'train'/'3'
    expected = load_digits(folder, cache=False).double()
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    from _workers import load
    ps = [ctx.Process(target=load, args=(str(folder), barrier, queue)) for _ in range(2)]
    for p in ps: p.start()
    results = [queue.get(timeout=120) for _ in ps]
    for p in ps: p.join(60)
    assert [p.exitcode for p in ps] == [0, 0]
    assert results[0] == results[1] == (tuple(expected.shape), float(expected.sum()), float((expected*expected).sum()))
    assert cache_status(folder) == 'fresh'
    assert torch.equal(load_digits(folder), load_digits(folder, cache=False))


# -------------------------------------------------------------------------------------- read-only

def test_unwritable_data_folder_is_detected(tmp_path, monkeypatch, cli):
    """As root, chmod does not stop writes, so this test makes the check itself say no (os.access), as it does for a
    normal user on a read-only folder; test_read_only_mount below uses a real read-only file system."""
    home = tmp_path/'home'; (home/'data').mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(data.os, 'access', lambda p, mode, **kw: False if Path(p) == home/'data' else real_access(p, mode, **kw))
    with pytest.raises(PermissionError) as e: build_embedded(home/'data'/'x', CLASSES)
    assert str(home/'data') in str(e.value) and 'not writable' in str(e.value)
    monkeypatch.setenv('FASTAI_HOME', str(home))
    status, out, err = cli('data')
    line = one_error_line(status, err, 'data')
    assert str(home/'data') in line and 'not writable' in line and 'FASTAI_HOME' in line
    assert list((home/'data').iterdir()) == []


def _can_mount_read_only(tmp:Path) -> bool:
    if not shutil.which('unshare'): return False
    (tmp/'probe').mkdir()
    r = subprocess.run(['unshare', '-m', 'sh', '-c', f'mount --bind "{tmp}/probe" "{tmp}/probe" && '
                        f'mount -o remount,bind,ro "{tmp}/probe" && ! touch "{tmp}/probe/x" 2>/dev/null'],
                       capture_output=True)
    return r.returncode == 0


def test_read_only_mount(tmp_path, make_sample, clean):
    """A real read-only file system (a bind mount in a private mount namespace; needs root and CAP_SYS_ADMIN):
    building there fails with one clear line; reading complete data or a learner's folder there works (no cache)."""
    if not _can_mount_read_only(tmp_path): pytest.skip('cannot make a read-only bind mount here (needs unshare and CAP_SYS_ADMIN)')
    ro = tmp_path/'ro'
    (ro/'empty_home'/'data').mkdir(parents=True)          # data folder there but not writable
    (ro/'bare_home').mkdir()                              # data folder cannot even be created
    build_embedded(ro/'full_home'/'data'/'mnist_sample_embedded', CLASSES)  # complete data, built earlier
    mine = make_sample('ro/mine')
    age(ro)
    before = snapshot(ro)
    cases = [({'FASTAI_HOME': str(ro/'empty_home')}, ['data']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['data']),
             ({'FASTAI_HOME': str(ro/'full_home')}, ['data', '--json']),
             ({'FASTAI_HOME': str(ro/'full_home')}, ['baseline', '--json']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['baseline', '--path', str(mine), '--json'])]
    script = (f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && '
              f'exec "{sys.executable}" "{HERE/"_workers.py"}" "$0"')
    r = subprocess.run(['unshare', '-m', 'sh', '-c', script, json.dumps(cases)], capture_output=True, text=True,
                       env={**os.environ, 'MNIST_BASICS_SOURCE': 'embedded'}, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    line = one_error_line(res[0]['status'], res[0]['stderr'], 'data')
    assert str(ro/'empty_home'/'data') in line and 'not writable' in line
    line = one_error_line(res[1]['status'], res[1]['stderr'], 'data')
    assert str(ro/'bare_home'/'data') in line and 'Read-only file system' in line
    for r_ in res[2:]: assert (r_['status'], r_['stderr']) == (0, ''), r_
    assert json.loads(res[2]['stdout'])['mnist_sample']['source'] == 'embedded'
    assert json.loads(res[3]['stdout'])['n'] == {'3': 100, '7': 100}
    assert json.loads(res[4]['stdout'])['n'] == {'3': 3, '7': 3}
    assert snapshot(ro) == before and not any(ro.rglob(CACHE_DIR))
    assert folder_digest(ro/'full_home'/'data'/'mnist_sample_embedded') == clean


# ------------------------------------------------------------------------------------------ the cache

@pytest.fixture
def cached(make_sample):
    "A class folder whose files are old enough to cache, loaded once so that its cache is fresh"
    s = make_sample(n_train=20)
    age(s)
    folder = s/'train'/'3'
    load_digits(folder)
    assert cache_status(folder) == 'fresh' and cache_file(folder).is_file()
    return folder


def assert_cache_serves_the_files(folder:Path):
    "Whatever the cache held, load_digits gives what the files hold now, and the cache catches up once they settle"
    truth = load_digits(folder, cache=False)
    assert torch.equal(load_digits(folder), truth)
    age(folder.parent)
    assert torch.equal(load_digits(folder), truth)
    assert cache_status(folder) == 'fresh'
    assert torch.equal(load_digits(folder), truth)


def test_cache_is_beside_the_data_and_hidden(cached):
    s = cached.parent.parent
    assert cache_file(cached).parent == cached.parent/CACHE_DIR
    assert check_layout(s) == CLASSES
    assert [f.name for f in image_files(cached)] == sorted(f.name for f in cached.iterdir())


def test_cache_rebuilt_when_an_image_changes(cached, digits):
    X, y = digits
    f = image_files(cached)[3]
    Image.fromarray(X[np.flatnonzero(y == 8)[0]]).save(f)
    assert cache_status(cached) == 'stale'
    assert_cache_serves_the_files(cached)


def test_cache_rebuilt_when_an_image_is_added(cached, digits):
    X, y = digits
    Image.fromarray(X[np.flatnonzero(y == 3)[-1]]).save(cached/'0000 new.png')
    assert cache_status(cached) == 'stale'
    assert len(load_digits(cached)) == 21
    assert_cache_serves_the_files(cached)


def test_cache_rebuilt_when_an_image_is_removed(cached):
    image_files(cached)[0].unlink()
    assert cache_status(cached) == 'stale'
    assert len(load_digits(cached)) == 19
    assert_cache_serves_the_files(cached)


def test_cache_rebuilt_when_images_are_renamed(cached):
    "Same files, new names: the order of the stack changes, so the cache must too"
    files = image_files(cached)
    files[0].rename(cached/'zzzz.png')
    assert cache_status(cached) == 'stale'
    assert_cache_serves_the_files(cached)


def test_cache_rebuilt_when_a_file_is_replaced_keeping_size_and_time(cached, digits):
    """`cp -p other.png this.png` rewrites a file in place and gives it the other file's time stamp.
    With two files of equal size, name, size, time and inode all stay the same: only the change time (ctime) moves."""
    files = image_files(cached)
    by_size = {}
    for f in files: by_size.setdefault(f.stat().st_size, []).append(f)
    a, b = next(v for v in by_size.values() if len(v) > 1)[:2]
    st = a.stat()
    a.write_bytes(b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (a.stat().st_size, a.stat().st_mtime_ns, a.stat().st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert torch.equal(load_digits(cached), load_digits(cached, cache=False)), 'the cache served the old pixels'


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty', 'a folder'])
def test_damaged_cache_is_ignored_and_rewritten(cached, damage):
    fn = cache_file(cached)
    if damage == 'truncated': fn.write_bytes(fn.read_bytes()[:-100])
    elif damage == 'garbage': fn.write_bytes(os.urandom(fn.stat().st_size))
    elif damage == 'empty': fn.write_bytes(b'')
    else: fn.unlink(); fn.mkdir()
    assert cache_status(cached) in ('corrupt', 'missing')
    assert torch.equal(load_digits(cached), load_digits(cached, cache=False))
    if damage != 'a folder': assert cache_status(cached) == 'fresh'


def test_fresh_files_are_not_cached_yet(make_sample):
    "Files written less than SETTLE_SECONDS ago may still be changing: they are read, not cached"
    s = make_sample()
    folder = s/'train'/'3'
    x = load_digits(folder)
    assert cache_status(folder) == 'missing'
    assert torch.equal(x, load_digits(folder, cache=False))


def test_interrupted_cache_write(cached, monkeypatch, digits):
    "Ctrl-C while the cache is being written: the old cache is never half-replaced, the next load is right"
    X, y = digits
    Image.fromarray(X[np.flatnonzero(y == 9)[0]]).save(image_files(cached)[0])
    age(cached.parent)
    real_replace = os.replace
    def interrupted(*a, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(data.os, 'replace', interrupted)
    with pytest.raises(KeyboardInterrupt): load_digits(cached)
    monkeypatch.setattr(data.os, 'replace', real_replace)
    assert cache_status(cached) == 'stale'
    assert_cache_serves_the_files(cached)

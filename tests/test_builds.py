"""Building fastai's folders from the shipped MNIST database: interrupted, killed, raced and read-only builds.

The killing and racing use the tiny layout of conftest.py (the 1,010 test-set 3s), so that many builds stay quick; the
code path is the one every layout takes. Every build goes to tmp_path (FASTAI_HOME points there): nothing touches
~/.fastai.
"""
from __future__ import annotations
import json, multiprocessing as mp, os, random, shutil, subprocess, sys, time
from pathlib import Path

import pytest

import mnist_basics.sources as sources
from mnist_basics.data import check_layout, image_files
from mnist_basics.sources import MARKER, build_folder, data_source

from conftest import folder_digest, one_error_line, snapshot

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope='session')
def ctx():
    "Child processes forked from a server that has already imported the package and read the digits"
    c = mp.get_context('forkserver')
    c.set_forkserver_preload(['_workers'])
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
    return folder_digest(build_folder('tiny', tmp_path_factory.mktemp('clean')/'tiny'))


def leftovers(parent:Path, name:str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f'.{name}.tmp-'))


def state(dest:Path, clean:str) -> str:
    "'absent', 'complete' (identical to a clean build) or 'PARTIAL' (anything else under the final name)"
    if not os.path.lexists(dest): return 'absent'
    return 'complete' if data_source(dest) == 'shipped' and folder_digest(dest) == clean else 'PARTIAL'


def test_clean_build_is_the_real_data(clean, tmp_path, digits):
    "Every 3 of the test set, named by its position there, with the database's pixels"
    import numpy as np
    from PIL import Image
    X, y = digits
    dest = build_folder('tiny', tmp_path/'tiny')
    files = image_files(dest/'valid'/'3')
    assert [f.name for f in files] == sorted(f'{i}.png' for i in np.flatnonzero(y == 3))
    for f in files[::50]: np.testing.assert_array_equal(np.array(Image.open(f)), X[int(f.stem)])
    assert folder_digest(dest) == clean
    assert json.loads((dest/MARKER).read_text())['counts'] == {'valid/3': 1010}


def test_killed_at_random_moments(tmp_path, ctx, clean):
    """SIGKILL a build at seeded random moments (every other one while replacing a complete folder with force=True),
    until five builds were really killed part way. The final name never holds a partial folder, and the next call
    always gives a folder identical to a clean build."""
    from _workers import build
    dest = tmp_path/'data'/'tiny'
    t0 = time.perf_counter()
    p = ctx.Process(target=build, args=(str(dest),)); p.start(); p.join()
    full = time.perf_counter() - t0  # how long one build takes in a child, here and now
    assert p.exitcode == 0 and state(dest, clean) == 'complete'
    rng, outcomes, upper = random.Random(20240504), [], full
    while sum(o[2] == -9 for o in outcomes) < 5 and len(outcomes) < 15:
        force = len(outcomes) % 2 == 1
        if not force: shutil.rmtree(dest)
        delay = rng.uniform(0.02, 0.95*upper)
        p = ctx.Process(target=build, args=(str(dest), force)); p.start()
        time.sleep(delay); p.kill(); p.join()
        if p.exitcode == 0: upper = delay  # builds are faster than measured: aim earlier from now on
        after_kill = state(dest, clean)
        outcomes.append((force, round(delay, 2), p.exitcode, after_kill))
        assert after_kill != 'PARTIAL', outcomes
        assert build_folder('tiny', dest) == dest
        assert state(dest, clean) == 'complete', outcomes
        assert check_layout(dest, ('valid',)) == ['3']
    killed = [o for o in outcomes if o[2] == -9]
    assert len(killed) >= 5, f"too few builds were still running when killed: {outcomes} (one build: {full:.2f} s)"
    assert any(o[3] == 'absent' for o in killed), 'no kill caught a build before it was published'


@pytest.mark.parametrize('where,force', [('before-rename', False), ('after-rename', False),
                                         ('before-rename', True), ('between-renames', True), ('after-rename', True)])
def test_killed_at_each_rename(tmp_path, ctx, clean, where, force):
    "Kill exactly at the delicate moments: just before, between and just after the renames that publish a build"
    from _workers import build_and_stop
    dest = tmp_path/'tiny'
    if force: build_folder('tiny', dest)
    stopped = ctx.Event()
    p = ctx.Process(target=build_and_stop, args=(str(dest), force, where, stopped)); p.start()
    assert stopped.wait(120), 'the child never reached the stopping point'
    p.kill(); p.join()
    assert p.exitcode == -9, 'the build finished without passing the stopping point'
    expected = {('before-rename', False): 'absent', ('after-rename', False): 'complete',
                ('before-rename', True): 'complete', ('between-renames', True): 'absent', ('after-rename', True): 'complete'}
    assert state(dest, clean) == expected[where, force]
    assert build_folder('tiny', dest) == dest and state(dest, clean) == 'complete'


def test_interrupted_in_a_cell(tmp_path, monkeypatch, clean):
    "Ctrl-C (KeyboardInterrupt) half way through writing: no final folder, no temporary folder, next call builds"
    dest = tmp_path/'tiny'
    real_write, written = Path.write_bytes, []
    def write_bytes(self, data):
        written.append(1)
        if len(written) == 300: raise KeyboardInterrupt
        return real_write(self, data)
    monkeypatch.setattr(Path, 'write_bytes', write_bytes)
    with pytest.raises(KeyboardInterrupt): build_folder('tiny', dest)
    assert not os.path.lexists(dest) and leftovers(tmp_path, dest.name) == []
    monkeypatch.setattr(Path, 'write_bytes', real_write)
    assert build_folder('tiny', dest) == dest and state(dest, clean) == 'complete'


def test_incomplete_build_is_rebuilt_not_trusted(tmp_path, clean):
    "A build of ours that lost files (its marker promises more) is replaced by a full build"
    dest = tmp_path/'tiny'
    build_folder('tiny', dest)
    for f in image_files(dest/'valid'/'3')[:5]: f.unlink()
    assert data_source(dest) == 'fastai'  # no longer counts as our complete build
    build_folder('tiny', dest)
    assert state(dest, clean) == 'complete'
    (dest/MARKER).write_text('{"counts": ')  # a damaged marker is not trusted either
    build_folder('tiny', dest)
    assert state(dest, clean) == 'complete'


def test_fastai_copy_is_never_replaced(tmp_path, monkeypatch):
    "A folder without our marker is fastai's download: used as it is, and a shipped build refuses to replace it"
    home = tmp_path/'home'
    theirs = home/'data'/'mnist_sample'
    for s in ('train', 'valid'):
        for c in ('3', '7'):
            (theirs/s/c).mkdir(parents=True)
            shutil.copy(image_files(build_folder('tiny', tmp_path/'tiny')/'valid'/'3')[0], theirs/s/c/'1.png')
    monkeypatch.setenv('FASTAI_HOME', str(home))
    before = snapshot(theirs)
    assert sources.mnist_sample(source='auto', verbose=False) == theirs
    assert sources.data_source(theirs) == 'fastai'
    with pytest.raises(FileExistsError, match="holds fastai's downloaded copy"): sources.mnist_sample(source='shipped')
    assert snapshot(theirs) == before


def test_two_processes_build_at_once(tmp_path, ctx, clean):
    "Two processes released together build the same folder: both succeed and see identical, complete data"
    from _workers import build
    dest = tmp_path/'data'/'tiny'
    for _ in range(2):
        if dest.exists(): shutil.rmtree(dest)
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        ps = [ctx.Process(target=build, args=(str(dest), False, barrier, queue)) for _ in range(2)]
        for p in ps: p.start()
        results = [queue.get(timeout=120) for _ in ps]
        for p in ps: p.join(60)
        assert [p.exitcode for p in ps] == [0, 0]
        assert results[0] == results[1] == (str(dest), clean)
        assert leftovers(dest.parent, dest.name) == []


def test_unwritable_data_folder_is_detected(tmp_path, monkeypatch, cli):
    """As root, chmod does not stop writes, so this test makes the check itself say no (os.access), as it does for a
    normal user on a read-only folder; test_read_only_mount below uses a real read-only file system."""
    home = tmp_path/'home'; (home/'data').mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(sources.os, 'access', lambda p, mode, **kw: False if Path(p) == home/'data' else real_access(p, mode, **kw))
    with pytest.raises(PermissionError) as e: build_folder('tiny', home/'data'/'x')
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


def test_read_only_mount(tmp_path, make_sample):
    """A real read-only file system (a bind mount in a private mount namespace; needs root and CAP_SYS_ADMIN):
    building there fails with one clear line; a learner's folder there is read as it is and left unchanged."""
    if not _can_mount_read_only(tmp_path): pytest.skip('cannot make a read-only bind mount here (needs unshare and CAP_SYS_ADMIN)')
    ro = tmp_path/'ro'
    (ro/'empty_home'/'data').mkdir(parents=True)          # data folder there but not writable
    (ro/'bare_home').mkdir()                              # data folder cannot even be created
    mine = make_sample('ro/mine')
    before = snapshot(ro)
    cases = [({'FASTAI_HOME': str(ro/'empty_home')}, ['data']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['data']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['data', '--path', str(mine), '--json'])]
    script = (f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && '
              f'exec "{sys.executable}" "{HERE/"_workers.py"}" "$0"')
    r = subprocess.run(['unshare', '-m', 'sh', '-c', script, json.dumps(cases)], capture_output=True, text=True,
                       env={**os.environ, 'MNIST_BASICS_SOURCE': 'shipped'}, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    line = one_error_line(res[0]['status'], res[0]['stderr'], 'data')
    assert str(ro/'empty_home'/'data') in line and 'not writable' in line
    line = one_error_line(res[1]['status'], res[1]['stderr'], 'data')
    assert str(ro/'bare_home'/'data') in line and 'Read-only file system' in line
    assert (res[2]['status'], res[2]['stderr']) == (0, ''), res[2]
    assert json.loads(res[2]['stdout'])['mnist_sample']['counts'] == {'train/3': 6, 'train/7': 6, 'valid/3': 3, 'valid/7': 3}
    assert snapshot(ro) == before

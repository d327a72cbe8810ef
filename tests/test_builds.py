"""Building fastai's folders from the shipped MNIST files: offline, interrupted, killed, raced and read-only builds.

The killing and racing use the tiny layout of conftest.py (the 1,010 test-set 3s), so that many builds stay quick; the
code path is the one every layout takes. Every build goes to a temporary folder (FASTAI_HOME points there): nothing
touches ~/.fastai.
"""
from __future__ import annotations
import json, multiprocessing as mp, os, random, shutil, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mnist_basics.data as data
from mnist_basics.data import MARKER, build_folder, data_source, mnist_sample

from conftest import folder_digest, one_error_line, snapshot, use_fastai_home

HERE = Path(__file__).resolve().parent


def test_default_run_makes_no_network_request(offline_home):
    """`mnist_sample()`, `mnist_all_digits()`, the book's `untar_data` lines and `mnist-basics data`, in an empty
    FASTAI_HOME with every socket connection and name look-up refused and recorded: no attempt, both folders built
    from the shipped files where untar_data looks, with every digit."""
    home, rep = offline_home
    assert rep['attempts'] == []
    assert rep['sample'] == str(home/'data'/'mnist_sample') and rep['png'] == str(home/'data'/'mnist_png')
    assert rep['untar_data'] == [rep['sample'], rep['png']]
    assert rep['sources'] == ['shipped', 'shipped'] and rep['status'] == 0
    assert rep['data']['mnist_sample']['counts'] == {'train/3': 6131, 'train/7': 6265, 'valid/3': 1010, 'valid/7': 1028}
    counts = rep['data']['mnist_png']['counts']
    assert sum(v for k, v in counts.items() if k.startswith('training/')) == 60000 and sum(counts.values()) == 70000
    assert counts['testing/5'] == 892
    assert json.loads((home/'data'/'mnist_png'/MARKER).read_text())['counts'] == counts


def test_build_is_the_real_data(tmp_path, digits):
    "Every 3 of the test set, named by its position there, with the database's pixels; labels.csv lists them; marker last"
    X, y = digits
    dest = build_folder('tiny', tmp_path/'tiny')
    files = sorted((dest/'valid'/'3').iterdir())
    assert sorted(f.name for f in files) == sorted(f'{i}.png' for i in np.flatnonzero(y == 3))
    for f in files[::50]: np.testing.assert_array_equal(np.asarray(Image.open(f)), X[int(f.stem)])
    assert json.loads((dest/MARKER).read_text())['counts'] == {'valid/3': 1010}
    assert (dest/'labels.csv').read_text().splitlines() == ['name,label'] + sorted(f'valid/3/{i}.png,0' for i in np.flatnonzero(y == 3))
    assert data_source(dest) == 'shipped' and data_source(tmp_path) == 'fastai'  # our marker says so
    assert max(f.stat().st_mtime_ns for f in files) <= (dest/MARKER).stat().st_mtime_ns


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


def test_killed_at_random_moments(tmp_path, ctx, clean):
    """SIGKILL a build at seeded random moments until three builds were really killed part way. The final name never
    holds a partial folder; the next call gives a folder identical to a clean build and deletes the dead one's
    temporary folder."""
    from _workers import build
    dest = tmp_path/'data'/'tiny'
    t0 = time.perf_counter()
    p = ctx.Process(target=build, args=(str(dest),)); p.start(); p.join()
    full = time.perf_counter() - t0  # how long one build takes in a child, here and now
    assert p.exitcode == 0 and state(dest, clean) == 'complete'
    rng, outcomes, upper = random.Random(20240504), [], full
    while sum(o[1] == -9 for o in outcomes) < 3 and len(outcomes) < 10:
        shutil.rmtree(dest)
        delay = rng.uniform(0.02, 0.9*upper)
        p = ctx.Process(target=build, args=(str(dest),)); p.start()
        time.sleep(delay); p.kill(); p.join()
        if p.exitcode == 0: upper = delay  # builds are faster than measured: aim earlier from now on
        after_kill = state(dest, clean)
        outcomes.append((round(delay, 2), p.exitcode, after_kill, leftovers(dest.parent, 'tiny')))
        assert after_kill != 'PARTIAL', outcomes
        assert build_folder('tiny', dest) == dest and state(dest, clean) == 'complete', outcomes
        assert leftovers(dest.parent, 'tiny') == [], outcomes  # the killed build's temporary folder is gone
    killed = [o for o in outcomes if o[1] == -9]
    assert len(killed) >= 3, f"too few builds were still running when killed: {outcomes} (one build: {full:.2f} s)"
    assert any(o[2] == 'absent' and o[3] for o in killed), 'no kill caught a build part way, before it was published'


@pytest.mark.parametrize('where', ['before-rename', 'after-rename'])
def test_killed_at_the_rename(tmp_path, ctx, clean, where):
    "Kill exactly at the delicate moments, just before and just after the rename that publishes a build"
    from _workers import build_and_stop
    dest = tmp_path/'tiny'
    stopped = ctx.Event()
    p = ctx.Process(target=build_and_stop, args=(str(dest), where, stopped)); p.start()
    assert stopped.wait(120), 'the child never reached the stopping point'
    p.kill(); p.join()
    assert p.exitcode == -9, 'the build finished without passing the stopping point'
    assert state(dest, clean) == {'before-rename': 'absent', 'after-rename': 'complete'}[where]
    assert build_folder('tiny', dest) == dest and state(dest, clean) == 'complete'
    assert leftovers(tmp_path, 'tiny') == []


def test_interrupted_in_a_cell(tmp_path, monkeypatch, clean):
    "Ctrl-C (KeyboardInterrupt) half way through writing: no final folder, no temporary folder, the next call builds"
    dest = tmp_path/'tiny'
    real_save, saved = Image.Image.save, []
    def save(self, *args, **kwargs):
        saved.append(1)
        if len(saved) == 300: raise KeyboardInterrupt
        return real_save(self, *args, **kwargs)
    monkeypatch.setattr(Image.Image, 'save', save)
    with pytest.raises(KeyboardInterrupt): build_folder('tiny', dest)
    assert len(saved) == 300 and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Image.Image, 'save', real_save)
    assert build_folder('tiny', dest) == dest and state(dest, clean) == 'complete'


def test_fastai_copy_is_used_as_it_is(tmp_path, monkeypatch, clean):
    "A folder already where untar_data looks (fastai's download: no marker) is returned untouched, and called 'fastai'"
    home = tmp_path/'home'
    theirs = home/'data'/'mnist_sample'
    one = next((build_folder('tiny', tmp_path/'tiny')/'valid'/'3').iterdir())
    for s in ('train', 'valid'):
        for c in ('3', '7'):
            (theirs/s/c).mkdir(parents=True)
            shutil.copy(one, theirs/s/c/'1.png')
    use_fastai_home(monkeypatch, home)
    before = snapshot(theirs)
    assert mnist_sample() == theirs and data_source(theirs) == 'fastai'
    assert snapshot(theirs) == before
    assert mnist_sample(tmp_path/'tiny') == tmp_path/'tiny'  # a `path` that exists is used as it is too


def test_two_processes_build_at_once(tmp_path, ctx, clean):
    "Two processes released together build the same folder: both succeed and see identical, complete data"
    from _workers import build
    dest = tmp_path/'data'/'tiny'
    for _ in range(2):
        if dest.exists(): shutil.rmtree(dest)
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        ps = [ctx.Process(target=build, args=(str(dest), barrier, queue)) for _ in range(2)]
        for p in ps: p.start()
        results = [queue.get(timeout=120) for _ in ps]
        for p in ps: p.join(60)
        assert [p.exitcode for p in ps] == [0, 0]
        assert results[0] == results[1] == (str(dest), clean)
        assert leftovers(dest.parent, dest.name) == []


def _can_mount_read_only(tmp:Path) -> bool:
    if not shutil.which('unshare'): return False
    (tmp/'probe').mkdir()
    r = subprocess.run(['unshare', '-m', 'sh', '-c', f'mount --bind "{tmp}/probe" "{tmp}/probe" && '
                        f'mount -o remount,bind,ro "{tmp}/probe" && ! touch "{tmp}/probe/x" 2>/dev/null'],
                       capture_output=True)
    return r.returncode == 0


def test_read_only_mount(tmp_path, make_sample):
    """A real read-only file system (a bind mount in a private mount namespace; needs root and CAP_SYS_ADMIN):
    building there fails with one line naming the folder; a learner's folder there is read as it is and left unchanged."""
    if not _can_mount_read_only(tmp_path): pytest.skip('cannot make a read-only bind mount here (needs unshare and CAP_SYS_ADMIN)')
    ro = tmp_path/'ro'
    (ro/'empty_home'/'data').mkdir(parents=True)          # data folder there but not writable
    (ro/'empty_home'/'config.ini').write_text('[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\nversion = 2\n')
    (ro/'bare_home').mkdir()                              # not even fastai's config.ini can be written
    mine = make_sample('ro/mine')
    before = snapshot(ro)
    cases = [({'FASTAI_HOME': str(ro/'empty_home')}, ['data']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['baseline']),
             ({'FASTAI_HOME': str(ro/'bare_home')}, ['data', '--path', str(mine), '--json'])]
    script = (f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && '
              f'exec "{sys.executable}" "{HERE/"_workers.py"}" "$0"')
    r = subprocess.run(['unshare', '-m', 'sh', '-c', script, json.dumps(cases)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    line = one_error_line(res[0]['status'], res[0]['stderr'], 'data')
    assert str(ro/'empty_home'/'data') in line and 'Read-only file system' in line
    line = one_error_line(res[1]['status'], res[1]['stderr'], 'baseline')
    assert str(ro/'bare_home') in line and 'Read-only file system' in line
    assert (res[2]['status'], res[2]['stderr']) == (0, ''), res[2]
    assert json.loads(res[2]['stdout'])['yours']['counts'] == {'train/3': 6, 'train/7': 6, 'valid/3': 3, 'valid/7': 3}
    assert snapshot(ro) == before

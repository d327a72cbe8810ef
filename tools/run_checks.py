"""Every check CI makes, in order, with one closing summary line. Run by `make test`."""
import hashlib, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
results = []  # (name, ok, seconds, detail)

def digest(patterns):
    out = {}
    for pat in patterns:
        for f in sorted(ROOT.glob(pat)):
            if f.is_file() and '.ipynb_checkpoints' not in f.parts: out[f.relative_to(ROOT).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out

def run(cmd, **kw):
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)

def record(name, ok, t0, detail=''):
    results.append((name, ok, time.perf_counter() - t0, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name} ({time.perf_counter()-t0:.1f} s){': ' + detail if detail else ''}", flush=True)

def unchanged_by(name, cmd, patterns, fix):
    t0 = time.perf_counter()
    before = digest(patterns)
    p = run(cmd)
    after = digest(patterns)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    ok = p.returncode == 0 and not changed
    detail = f"exit {p.returncode}" if p.returncode else (f"changed {', '.join(changed)}; {fix}" if changed else '')
    record(name, ok, t0, detail)

def notebooks():
    t0 = time.perf_counter()
    nbs = sorted(f for f in (ROOT/'nbs').glob('*.ipynb'))
    # Two notebooks run at once on two cores: one torch thread each avoids oversubscription, which
    # makes small tensor operations many times slower.
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    p = run([BIN/'nbdev-test', '--timing', '--n-workers', os.environ.get('NBDEV_WORKERS', '2')],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    print(p.stdout, flush=True)
    failed = set(re.findall(r'==> (\S+\.ipynb)', p.stdout))
    if p.returncode and not failed: failed = {'(nbdev-test exited %d)' % p.returncode}
    for nb in nbs:
        bad = any(nb.name in f for f in failed)
        results.append((f'notebook {nb.name}', not bad, 0, ''))
    if p.returncode and not any(any(nb.name in f for f in failed) for nb in nbs): results.append(('nbdev-test', False, 0, ''))
    print(f"{'PASS' if not p.returncode else 'FAIL'} nbdev-test over {len(nbs)} notebooks ({time.perf_counter()-t0:.1f} s)", flush=True)

def pytest_suite():
    if not (ROOT/'tests').is_dir(): return
    t0 = time.perf_counter()
    p = run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'])
    if p.returncode == 5: return print("(pytest: no tests collected)")
    record('pytest tests/', p.returncode == 0, t0, '' if p.returncode == 0 else f'exit {p.returncode}')

def site_in_browser():
    "The browser test of the reading site, when `make site` has built one (it is not rebuilt here)"
    if not (ROOT/'_site'/'index.html').is_file(): return print("(no _site/: `make site site-test` builds and checks the reading site)")
    t0 = time.perf_counter()
    p = run(['make', '--no-print-directory', 'site-test'])
    record('reading site in Chromium (make site-test, on the _site/ built last)', p.returncode == 0, t0,
           '' if p.returncode == 0 else f'exit {p.returncode}; rebuild with `make site` if the notebooks changed')

if __name__ == '__main__':
    start = time.perf_counter()
    unchanged_by('notebooks clean (nbdev-clean changes nothing)', [BIN/'nbdev-clean'], ['nbs/**/*.ipynb'],
                 'run `make clean-nbs` and commit')
    unchanged_by('library in sync (nbdev-export changes nothing)', [BIN/'nbdev-export'],
                 ['mnist_basics/**/*.py', 'nbs/llms.txt', 'pyproject.toml'], 'run `make export` and commit')
    t0 = time.perf_counter()
    p = run([sys.executable, 'tools/make_readme.py', '--check'])
    record('README.md agrees with nbs/index.ipynb', p.returncode == 0, t0, '' if p.returncode == 0 else 'run `make readme` and commit')
    notebooks()
    pytest_suite()
    site_in_browser()
    npass = sum(ok for _, ok, _, _ in results); nfail = len(results) - npass
    print(f"\n{len(results)} checks in {time.perf_counter()-start:.0f} s")
    for name, ok, _, detail in results:
        if not ok: print(f"  failed: {name} {detail}")
    print(f"checks: {npass} passed, {nfail} failed")
    sys.exit(1 if nfail else 0)

"""Every check of the project, in order: `make test` runs this (and `.ci/run` and CI run `make test`). Each notebook,
test and page is one check; the last line is `N passed, N failed`, exit 1 if anything failed. SKIP="site lab" leaves
the named stages of STAGES out (pytest runs with the site; SKIP=pytest leaves it out).
"""
import os, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT/'tools'))
from lab import git_state  # noqa: E402
SKIP = set(os.environ.get('SKIP', '').split())
results, stages = [], []  # (name, ok, detail); (stage, seconds, passed, failed)

def run(cmd, popen=False, **kw):
    print(f"$ {' '.join(map(str, cmd))}" + (' (in the background)' if popen else ''), flush=True)
    return (subprocess.Popen if popen else subprocess.run)([str(c) for c in cmd], cwd=ROOT, **kw)

def record(name, ok, detail=''):
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)

def tally(name, cmd):
    "Run a tool; count its checks from its last line saying 'N passed' / 'N failed' (an error exit fails one at least)"
    p = run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) if isinstance(cmd, list) else cmd
    print(p.stdout, end='', flush=True)
    last = next((l for l in reversed(p.stdout.splitlines()) if re.search(r'\d+ (passed|failed)', l)), '')
    n = {k: int(v) for v, k in re.findall(r'(\d+) (passed|failed|error)', last)}
    nfail = max(n.get('failed', 0) + n.get('error', 0), int(p.returncode != 0))
    results.extend([(name, True, '')] * n.get('passed', 0) + [(name, False, last or 'see above')] * nfail)

def unchanged_by(name, cmd, fix):
    "`cmd` must leave every file as it was (`git status` and the content of the files it lists)"
    before, code = git_state(), run(cmd).returncode
    changed = sorted({line[3:] for line, _ in before ^ git_state()})
    record(name, code == 0 and not changed, f'exit {code}' if code else f"changed {', '.join(changed)}; {fix}")

def setup():
    p = run([BIN/'zizmor', '--offline', '--quiet', '.github/workflows/'], capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip() or f'exit {p.returncode}'
    record('workflows pass `zizmor --offline`', p.returncode == 0, out.splitlines()[-1])
    lock = ROOT/os.environ.get('LOCK', 'requirements.lock')
    if not lock.is_file(): return print(f'(no lock file: {lock.name})')
    want = {l.split('==')[0].lower(): l.strip() for l in lock.read_text().splitlines() if '==' in l and l[0] != '#'}
    freeze = run([BIN/'python', '-m', 'pip', 'freeze', '--exclude-editable'], capture_output=True, text=True).stdout
    have = {l.split('==')[0].lower(): l.strip() for l in freeze.splitlines() if '==' in l}
    off = sorted(f"{v} (installed: {have.get(k, 'none')})" for k, v in want.items() if have.get(k) != v)
    record(f'.venv holds the {len(want)} locked versions of {lock.name}', not off, '; '.join(off[:5]) + ' (make setup)')

def notebooks():
    import run_notebooks
    # the digits found or built once, here, not by two notebooks at the same moment
    run([sys.executable, '-c', 'import mnist_basics.data as d; d.mnist_sample(); d.mnist_all_digits()'])
    for nb, (ok, secs, msg) in run_notebooks.main([]).items():
        results.append((f'notebook {nb}', ok, msg.splitlines()[0] if msg else ''))

def site():
    "The site built and checked in Chromium, with pytest run alongside (they share two cores: neither keeps both busy)"
    cmd, log = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'], tempfile.TemporaryFile('w+')
    pytest = None if 'pytest' in SKIP else run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, popen=True)
    code = run(['make', '--no-print-directory', '-s', 'site']).returncode  # its output shown as it comes
    record('reading site built from the committed outputs (make site)', code == 0, f'exit {code}')
    if code == 0: tally('site page', ['make', '--no-print-directory', '-s', 'site-test'])
    if pytest:
        print('\n== pytest (run alongside the site)', flush=True)
        code = pytest.wait()
        log.seek(0)
        tally('pytest tests/', subprocess.CompletedProcess(cmd, code, log.read()))

STAGES = [
    ('setup', setup),
    ('clean', lambda: unchanged_by('notebooks clean (nbdev-clean changes nothing)', [BIN/'nbdev-clean'], 'make clean-nbs')),
    ('export', lambda: unchanged_by('library in sync (nbdev-export changes nothing)', [BIN/'nbdev-export'], 'make export')),
    ('readme', lambda: unchanged_by('README.md agrees with nbs/index.ipynb', [BIN/'python', 'tools/make_readme.py'], 'make readme')),
    ('notebooks', notebooks), ('site', site),
    ('lab', lambda: tally('lab-test', ['make', '--no-print-directory', '-s', 'lab-test'])),
]

if __name__ == '__main__':
    start = time.perf_counter()
    for name, fn in STAGES:
        if name in SKIP: print(f'(skipped: {name})', flush=True); continue
        print(f'\n== {name}', flush=True)
        t0, n0 = time.perf_counter(), len(results)
        fn()
        ok = sum(r[1] for r in results[n0:])
        stages.append((name, time.perf_counter() - t0, ok, len(results) - n0 - ok))
        print(f'== {name}: {ok} passed, {len(results) - n0 - ok} failed in {stages[-1][1]:.1f} s', flush=True)
    npass = sum(ok for _, ok, _ in results)
    print('\nstage      seconds  passed  failed   (site: with pytest)')
    for name, secs, ok, bad in stages: print(f'{name:<10} {secs:7.1f} {ok:7d} {bad:7d}')
    print(f"{'all':<10} {time.perf_counter() - start:7.1f}")
    for name, ok, detail in dict.fromkeys(r for r in results if not r[1]): print(f'  failed: {name}: {detail}')
    print(f'{npass} passed, {len(results) - npass} failed', flush=True)
    sys.exit(1 if len(results) > npass else 0)

"""Every check of the project, in order, one definition: `make test` runs this; `.ci/run` and CI run `make test`.

Stages: setup (zizmor on the workflows; .venv holds requirements.lock's versions), clean (nbdev-clean changes nothing),
export (nbdev-export changes nothing), readme, prose (numbers printed), notebooks (run fresh, outputs up to date),
site (built and checked in Chromium; pytest runs alongside), lab (`make lab-test`). Each notebook, test and page is one
check; the last line is `N passed, N failed` (exit 1 if anything failed). SKIP="site lab" leaves stages out.
"""
import hashlib, os, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT/'tools'))
SKIP = set(os.environ.get('SKIP', '').split())
results, stages = [], []  # (name, ok, detail); (stage, seconds, passed, failed)

def run(cmd, **kw):
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw)

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

def unchanged_by(name, cmd, patterns, fix):
    def digest():
        files = [f for pat in patterns for f in sorted(ROOT.glob(pat)) if '.ipynb_checkpoints' not in f.parts]
        return {f.relative_to(ROOT).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    before, code, after = digest(), run(cmd).returncode, digest()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
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

def prose():
    import prose_numbers
    for nb in prose_numbers.notebooks():
        problems = prose_numbers.check(nb)
        for x in problems: print(f'    {x}')
        record(f'prose numbers {nb.name}', not problems, f'{len(problems)} number(s) not printed (see above)')

def notebooks():
    import run_notebooks
    # the digits found or built once, here, not by two notebooks at the same moment
    run([sys.executable, '-c', 'import mnist_basics.data as d; d.mnist_sample(); d.mnist_all_digits()'])
    for nb, (ok, secs, msg) in run_notebooks.main(['--check']).items():
        results.append((f'notebook {nb}', ok, msg.splitlines()[0] if msg else ''))

def site():
    code = run(['make', '--no-print-directory', '-s', 'site']).returncode  # its output shown as it comes
    record('reading site built from the committed outputs (make site)', code == 0, f'exit {code}')
    if code == 0: tally('site page', ['make', '--no-print-directory', '-s', 'site-test'])

STAGES = [
    ('setup', setup),
    ('clean', lambda: unchanged_by('notebooks clean (nbdev-clean changes nothing)', [BIN/'nbdev-clean'],
                                   ['nbs/**/*.ipynb'], 'run `make clean-nbs`')),
    ('export', lambda: unchanged_by('library in sync (nbdev-export changes nothing)', [BIN/'nbdev-export'],
                                    ['mnist_basics/**/*.py', 'pyproject.toml'], 'run `make export`')),
    ('readme', lambda: record('README.md agrees with nbs/index.ipynb',
                              run([sys.executable, 'tools/make_readme.py', '--check']).returncode == 0, 'make readme')),
    ('prose', prose), ('notebooks', notebooks), ('site', site), ('pytest', None),
    ('lab', lambda: tally('lab-test', ['make', '--no-print-directory', '-s', 'lab-test'])),
]

if __name__ == '__main__':
    start, pytest = time.perf_counter(), None
    for name, fn in STAGES:
        if name == 'site' and 'pytest' not in SKIP:  # pytest and the site share two cores: neither keeps both busy
            cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests']
            log = tempfile.TemporaryFile('w+')
            print(f"$ {' '.join(cmd)} (in the background, while the site is built and checked)", flush=True)
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
            pytest = (proc, log, time.perf_counter())
        if name in SKIP: print(f'(skipped: {name})', flush=True); continue
        print(f'\n== {name}', flush=True)
        t0, n0 = time.perf_counter(), len(results)
        if name == 'pytest':
            code, (proc, log, t0) = pytest[0].wait(), pytest
            log.seek(0)
            tally('pytest tests/', subprocess.CompletedProcess(cmd, code, log.read()))
        else: fn()
        ok = sum(r[1] for r in results[n0:])
        stages.append((name, time.perf_counter() - t0, ok, len(results) - n0 - ok))
        print(f'== {name}: {ok} passed, {len(results) - n0 - ok} failed in {stages[-1][1]:.1f} s', flush=True)
    npass = sum(ok for _, ok, _ in results)
    print('\nstage      seconds  passed  failed   (pytest runs alongside site)')
    for name, secs, ok, bad in stages: print(f'{name:<10} {secs:7.1f} {ok:7d} {bad:7d}')
    print(f"{'all':<10} {time.perf_counter() - start:7.1f}")
    for name, ok, detail in dict.fromkeys(r for r in results if not r[1]): print(f'  failed: {name}: {detail}')
    print(f'{npass} passed, {len(results) - npass} failed', flush=True)
    sys.exit(1 if len(results) > npass else 0)

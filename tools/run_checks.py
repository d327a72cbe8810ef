"""Every check of the project, in order, one definition: `make test` runs this, `.ci/run` and CI run `make test`.

Stages: setup (zizmor on the workflows; .venv holds the versions of requirements.lock), clean (nbdev-clean changes
nothing), export (nbdev-export changes nothing), readme, prose (numbers printed), notebooks (run fresh, outputs up to
date), site (built; pages, links between notebooks and anchors checked in Chromium), pytest (in the background
during site), lab (`make lab-test`).
Each notebook, pytest test and page counts as one check; prints each stage's time, and its last line is
`N passed, N failed` over everything (exit status 1 if anything failed). SKIP="site lab" leaves stages out.
"""
import hashlib, os, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT/'tools'))
results = []  # (name, ok, detail)
stages = []   # (stage, seconds, passed, failed)
SKIP = set(os.environ.get('SKIP', '').split())

def run(cmd, **kw):
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw)

def make(target) -> tuple[str, int]:
    "Run a make target; its output and exit status"
    p = run(['make', '--no-print-directory', '-s', target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.stdout, p.returncode

def stage(name):
    "Decorator: time a stage, count what it added to `results`, print its line"
    def wrap(fn):
        def inner(*args):
            if name in SKIP: return print(f'(skipped: {name})', flush=True)
            print(f'\n== {name}', flush=True)
            t0, n0 = time.perf_counter(), len(results)
            secs = fn(*args) or time.perf_counter() - t0  # a stage that ran in the background returns its own time
            ok = sum(r[1] for r in results[n0:])
            stages.append((name, secs, ok, len(results) - n0 - ok))
            print(f'== {name}: {ok} passed, {len(results) - n0 - ok} failed in {secs:.1f} s', flush=True)
        return inner
    return wrap

def record(name, ok, detail=''):
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)

def tally(name, out: str, code: int):
    "Count a tool's checks from its last line that says 'N passed' or 'N failed' (an error exit fails one at least)"
    print(out, end='', flush=True)
    last = next((line for line in reversed(out.splitlines()) if re.search(r'\d+ (passed|failed)', line)), '')
    n = {k: int(v) for v, k in re.findall(r'(\d+) (passed|failed|error)', last)}
    nfail = max(n.get('failed', 0) + n.get('error', 0), int(code != 0))
    results.extend([(name, True, '')] * n.get('passed', 0) + [(name, False, last or 'see above')] * nfail)

def unchanged_by(name, cmd, patterns, fix):
    def digest():
        files = [f for pat in patterns for f in sorted(ROOT.glob(pat)) if '.ipynb_checkpoints' not in f.parts]
        return {f.relative_to(ROOT).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    before = digest()
    p = run(cmd)
    after = digest()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    detail = f'exit {p.returncode}' if p.returncode else (f"changed {', '.join(changed)}; {fix}" if changed else '')
    record(name, p.returncode == 0 and not changed, detail)

@stage('setup')
def setup():
    "The workflows pass zizmor's audit, and .venv holds exactly the versions requirements.lock names"
    p = run([BIN/'zizmor', '--offline', '--quiet', '.github/workflows/'], capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    record('workflows pass `zizmor --offline`', p.returncode == 0, (out or f'exit {p.returncode}').splitlines()[-1])
    lock = ROOT/os.environ.get('LOCK', 'requirements.lock')
    if not lock.is_file(): return print(f'(no lock file: {lock.name})')
    want = {l.split('==')[0].lower(): l.strip() for l in lock.read_text().splitlines() if '==' in l and l[0] != '#'}
    freeze = run([BIN/'python', '-m', 'pip', 'freeze', '--exclude-editable'], capture_output=True, text=True).stdout
    have = {l.split('==')[0].lower(): l.strip() for l in freeze.splitlines() if '==' in l}
    off = sorted(f"{v} (installed: {have.get(k, 'none')})" for k, v in want.items() if have.get(k) != v)
    record(f'.venv holds the {len(want)} locked versions of {lock.name}', not off,
           '; '.join(off[:5]) + ' (run `make setup`)')

@stage('clean')
def clean():
    unchanged_by('notebooks clean (nbdev-clean changes nothing)', [BIN/'nbdev-clean'], ['nbs/**/*.ipynb'],
                 'run `make clean-nbs`')

@stage('export')
def export():
    unchanged_by('library in sync (nbdev-export changes nothing)', [BIN/'nbdev-export'],
                 ['mnist_basics/**/*.py', 'pyproject.toml'], 'run `make export`')

@stage('readme')
def readme():
    p = run([sys.executable, 'tools/make_readme.py', '--check'])
    record('README.md agrees with nbs/index.ipynb', p.returncode == 0, 'run `make readme`')

@stage('prose')
def prose():
    import prose_numbers
    for nb in prose_numbers.notebooks():
        problems = prose_numbers.check(nb)
        for x in problems: print(f'    {x}')
        record(f'prose numbers {nb.name}', not problems, f'{len(problems)} number(s) not printed (see above)')

@stage('notebooks')
def notebooks():
    import run_notebooks
    # the digits found or built once, here, not by two notebooks at the same moment
    run([sys.executable, '-c', 'import mnist_basics.data as d; d.mnist_sample(); d.mnist_all_digits()'])
    for nb, (ok, secs, msg) in run_notebooks.main(['--check']).items():
        results.append((f'notebook {nb}', ok, msg.splitlines()[0] if msg else ''))

@stage('pytest')
def pytest_suite(started):
    "pytest, started in the background before the site stage: its output, once it has finished"
    proc, log, t0 = started
    code = proc.wait()
    log.seek(0)
    tally('pytest tests/', log.read(), code)
    return time.perf_counter() - t0

@stage('site')
def site():
    p = run(['make', '--no-print-directory', '-s', 'site'])  # its output shown as it comes
    record('reading site built from the committed outputs (make site)', p.returncode == 0, f'exit {p.returncode}')
    if p.returncode: return
    tally('site page', *make('site-test'))

@stage('lab')
def lab():
    tally('lab-test', *make('lab-test'))

if __name__ == '__main__':
    start = time.perf_counter()
    for check in (setup, clean, export, readme, prose, notebooks): check()
    if 'pytest' not in SKIP:  # pytest and the reading site share the two cores: neither keeps both busy
        cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests']
        print(f"$ {' '.join(cmd)} (in the background, while the site is built and checked)", flush=True)
        log = tempfile.TemporaryFile(mode='w+')
        started = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True), log,
                   time.perf_counter())
    site()
    pytest_suite(started if 'pytest' not in SKIP else None)
    lab()
    npass = sum(ok for _, ok, _ in results)
    print('\nstage      seconds  passed  failed   (pytest runs alongside site)')
    for name, secs, ok, bad in stages: print(f'{name:<10} {secs:7.1f} {ok:7d} {bad:7d}')
    print(f"{'all':<10} {time.perf_counter() - start:7.1f}")
    for name, ok, detail in dict.fromkeys((n, o, d) for n, o, d in results if not o):
        print(f'  failed: {name}{": " + detail if detail else ""}')
    print(f'{npass} passed, {len(results) - npass} failed', flush=True)
    sys.exit(1 if len(results) > npass else 0)

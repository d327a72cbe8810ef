"""Every check of the project, in order, one definition: `make test` runs this, `.ci/run` and CI run `make test`.

1. notebooks clean (`nbdev-clean` changes nothing);
2. library in sync (`nbdev-export` changes nothing);
3. README.md agrees with nbs/index.ipynb (tools/make_readme.py --check);
4. numbers in the prose are printed by the notebook (tools/prose_numbers.py, on the committed outputs);
5. links between notebooks (tools/check_links.py);
6. every notebook runs once, fresh, and its committed outputs are up to date (tools/run_notebooks.py --check);
7. the reading site built from the committed outputs, without running anything (`make site`), and checked in
   headless Chromium (`make site-test`);
8. pytest tests/ (started before the site stage, running alongside it: neither keeps both cores busy);
9. the live JupyterLab session (`make lab-test`).

Each notebook, each pytest test and each page counts as one check. Prints the time of each stage, and its very
last line is `N passed, N failed` over everything; exit status 1 if anything failed.
Environment: SKIP="site lab" leaves stages out (names: clean export readme prose links notebooks pytest site lab).
"""
import hashlib, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT/'tools'))
results = []  # (name, ok, detail)
stages = []   # (stage, seconds, passed, failed)
SKIP = set(os.environ.get('SKIP', '').split())

def digest(patterns):
    out = {}
    for pat in patterns:
        for f in sorted(ROOT.glob(pat)):
            if f.is_file() and '.ipynb_checkpoints' not in f.parts: out[f.relative_to(ROOT).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out

def run(cmd, **kw):
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw)

def stage(name):
    "Decorator: time a stage, count what it added to `results`, print its line"
    def wrap(fn):
        def inner():
            if name in SKIP: return print(f'(skipped: {name})', flush=True)
            print(f'\n== {name}', flush=True)
            t0, n0 = time.perf_counter(), len(results)
            secs = fn()  # a stage that ran in the background returns its own duration
            secs = secs if isinstance(secs, float) else time.perf_counter() - t0
            new = results[n0:]
            ok = sum(r[1] for r in new)
            stages.append((name, secs, ok, len(new) - ok))
            print(f'== {name}: {ok} passed, {len(new) - ok} failed in {secs:.1f} s', flush=True)
        return inner
    return wrap

def record(name, ok, detail=''):
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)

def unchanged_by(name, cmd, patterns, fix):
    before = digest(patterns)
    p = run(cmd)
    after = digest(patterns)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    detail = f'exit {p.returncode}' if p.returncode else (f"changed {', '.join(changed)}; {fix}" if changed else '')
    record(name, p.returncode == 0 and not changed, detail)

def counted(p_stdout: str, pattern: str):
    "(passed, failed) from a summary line matching `pattern` with groups for the counts, or None"
    m = None
    for m in re.finditer(pattern, p_stdout): pass
    return m

@stage('clean')
def clean():
    unchanged_by('notebooks clean (nbdev-clean changes nothing)', [BIN/'nbdev-clean'], ['nbs/**/*.ipynb'], 'run `make clean-nbs`')

@stage('export')
def export():
    unchanged_by('library in sync (nbdev-export changes nothing)', [BIN/'nbdev-export'],
                 ['mnist_basics/**/*.py', 'nbs/llms.txt', 'pyproject.toml'], 'run `make export`')

@stage('readme')
def readme():
    p = run([sys.executable, 'tools/make_readme.py', '--check'])
    record('README.md agrees with nbs/index.ipynb', p.returncode == 0, 'run `make readme`')

@stage('prose')
def prose():
    import prose_numbers
    for nb, problems in prose_numbers.main([]).items():
        record(f'prose numbers {nb}', not problems, f'{len(problems)} number(s) not printed (see above)')

@stage('links')
def links():
    import check_links
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        problems = check_links.check(nb)
        for x in problems: print(f'    {x}')
        record(f'links {nb.name}', not problems, f'{len(problems)} broken link(s) (see above)')

@stage('notebooks')
def notebooks():
    import run_notebooks
    # the digits found or built once, here, not by two notebooks at the same moment
    run([sys.executable, '-c', 'from mnist_basics.sources import mnist_sample, mnist_all_digits; mnist_sample(); mnist_all_digits()'])
    for nb, (ok, secs, msg) in run_notebooks.main(['--check']).items():
        results.append((f'notebook {nb}', ok, msg.splitlines()[0] if msg else ''))

_pytest = {}

def pytest_start():
    "Start pytest in the background (it runs while the reading site is built and checked); `pytest_suite` collects it"
    if 'pytest' in SKIP or not (ROOT/'tests').is_dir(): return
    import tempfile
    log = tempfile.TemporaryFile(mode='w+')
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests']
    print(f"$ {' '.join(map(str, cmd))} (in the background, while the site is built and checked)", flush=True)
    _pytest.update(p=subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True), log=log, t0=time.perf_counter())

@stage('pytest')
def pytest_suite():
    if not _pytest: pytest_start()
    if not _pytest: return
    code = _pytest['p'].wait()
    _pytest['log'].seek(0); out = _pytest['log'].read()
    print(out, end='', flush=True)
    print(f"(pytest ran for {time.perf_counter() - _pytest['t0']:.1f} s)")
    if code == 5: return print('(pytest: no tests collected)')
    last = out.strip().splitlines()[-1] if out.strip() else ''
    n = {k: int(v) for v, k in re.findall(r'(\d+) (passed|failed|errors?)', last)}
    npass, nfail = n.get('passed', 0), n.get('failed', 0) + n.get('error', 0) + n.get('errors', 0)
    if code and not nfail: nfail = 1
    results.extend([('pytest test', True, '')] * npass + [('pytest tests/', False, last)] * nfail)
    print(f"{'PASS' if not code else 'FAIL'} pytest tests/: {npass} passed, {nfail} failed", flush=True)
    return time.perf_counter() - _pytest['t0']

@stage('site')
def site():
    p = run(['make', '--no-print-directory', '-s', 'site'])
    record('reading site built from the committed outputs (make site)', p.returncode == 0, f'exit {p.returncode}')
    if p.returncode: return
    p = run(['make', '--no-print-directory', '-s', 'site-test'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout, end='', flush=True)
    m = counted(p.stdout, r'site: (\d+) passed, (\d+) failed')
    npass, nfail = (int(m.group(1)), int(m.group(2))) if m else (0, 1)
    if p.returncode and not nfail: nfail = 1
    results.extend([('site page', True, '')] * npass + [('site-test', False, 'see above')] * nfail)

@stage('lab')
def lab():
    p = run(['make', '--no-print-directory', '-s', 'lab-test'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout, end='', flush=True)
    m = counted(p.stdout, r'(\d+) passed, (\d+) failed')
    npass, nfail = (int(m.group(1)), int(m.group(2))) if m else (int(p.returncode == 0), int(p.returncode != 0))
    if p.returncode and not nfail: nfail = 1
    results.extend([('lab-test', True, '')] * npass + [('lab-test', False, 'see above')] * nfail)

if __name__ == '__main__':
    start = time.perf_counter()
    for check in (clean, export, readme, prose, links, notebooks): check()
    pytest_start()  # pytest and the reading site share the two cores: neither keeps both busy
    for check in (site, pytest_suite, lab): check()
    npass = sum(ok for _, ok, _ in results); nfail = len(results) - npass
    print(f'\nstage      seconds  passed  failed   (pytest runs alongside site)')
    for name, secs, ok, bad in stages: print(f'{name:<10} {secs:7.1f} {ok:7d} {bad:7d}')
    print(f"{'all':<10} {time.perf_counter() - start:7.1f}")
    for name, ok, detail in dict.fromkeys((n, o, d) for n, o, d in results if not o):
        print(f'  failed: {name}{": " + detail if detail else ""}')
    print(f'{npass} passed, {nfail} failed', flush=True)
    sys.exit(1 if nfail else 0)

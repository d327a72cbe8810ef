"""Run the series' notebooks in a real Jupyter kernel: the one notebook runner of `make test`, `make outputs`
and the docs deploy.

Usage: python tools/run_notebooks.py [--check | --write] [--flags slow] [--workers 2] [NB ...]
  NB: notebook names (`06_accuracy`, `06_accuracy.ipynb` or a path); default every `nbs/*.ipynb`.

How a notebook is run: with nbclient in a real `python3` kernel (this Python), working folder `nbs/`, two
notebooks at a time, each kernel with `OMP_NUM_THREADS=1` (two kernels share two cores) and `IN_TEST=1`, at
most 600 s per cell (`cell_timeout` in pyproject's [tool.nbdev]). Which cells run is decided by nbdev itself
(`nbdev.test.nb_test_cells`, the function behind `nbdev-test`): cells with a directive listed in `tst_flags`
(`#| slow`, `#| notest`) are skipped unless `--flags` names it, `#| eval: false` cells and notebooks with
`skip_exec: true` in their frontmatter are skipped. The first error stops the notebook and fails it.

`--write` (`make outputs`, `make outputs NB=06_accuracy`) puts the fresh outputs into the notebook in place
(cells that were not run keep what they had) and runs `nbdev-clean` on it, so the committed notebook is
clean and, the notebooks being seeded, the same bytes on every run on the same machine.

`--check` (the default; `make test`) runs each notebook once and compares its fresh outputs with the
committed ones; a notebook whose committed outputs are stale fails, naming the first cell that differs and
the command that refreshes it.

What the comparison tolerates. Committed outputs are written on one machine and checked on others (another
CPU, another build of torch or matplotlib on a hosted runner). The comparison is meant to catch outputs
that no longer match the code, not a different machine, so:
- text is compared after masking what varies by nature: times, durations and clocks, dates, memory
  addresses, temporary paths, the home and fastai data folders, where the digits came from (the line
  `mnist_sample: ...` that `mnist_sample()` prints, `data_source(path)`), widget model ids, pandas Styler ids,
  progress-bar redraws (stream text is compared as a terminal shows it, unfinished bars dropped); runs of
  spaces count as one (table columns widen with their numbers); in a cell that measures time (its source
  calls `perf_counter`, `timeit`, `%time`...) every decimal number is masked and its pictures are compared
  by size only;
- whole numbers must be equal; decimal numbers may differ by one unit in the last printed digit or by a
  relative 1e-3 (about three significant digits): a float summed in another order or another BLAS's last
  bits, not a changed result;
- pictures (PNG/JPEG) must have the same size in pixels, and the pixels may differ by at most 2 levels
  (of 255) on average, with at most 2% of them differing by more than 32 levels: font hinting and
  anti-aliasing of another matplotlib/FreeType, not another picture;
- the same number and kinds of outputs per cell, in the same order (stream outputs of one cell merged);
  stderr (warnings, whose wording and line numbers come with the library versions) is not compared.
`--exact` turns the tolerances off (numbers as printed, pictures pixel for pixel), for checking on the
machine that wrote the outputs.

Prints one line per notebook with its time, and closes with `notebooks: N passed, N failed`; exit status 1
if any failed. `main()` returns {notebook name: (ok, seconds, message)} for tools/run_checks.py.
"""
from __future__ import annotations
import argparse, base64, difflib, io, json, multiprocessing, os, re, subprocess, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TIMES = ROOT/'_proc'/'notebook_times.json'  # last run times, to start the longest notebooks first
BIN = Path(sys.executable).parent

# ---------------------------------------------------------------- which notebooks, which cells

def series(names=()) -> list[Path]:
    "The notebooks named (stems, file names or paths), or every notebook in nbs/ (not `_*`, `.*`), sorted"
    if not names: return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    out = []
    for n in names:
        p = Path(n)
        cands = [p, NBS/p.name, NBS/(p.name + '.ipynb')]
        f = next((c for c in cands if c.suffix == '.ipynb' and c.is_file()), None)
        if f is None: sys.exit(f'no notebook {n!r} in nbs/ (try one of: {", ".join(x.stem for x in series())})')
        out.append(f.resolve())
    return out

def config():
    from nbdev.config import get_config
    return get_config(path=ROOT)

def cells_to_run(path: Path, flags: set[str]) -> set[int]:
    "Indices of the cells nbdev-test would run, decided by nbdev (`nb_test_cells`) from the notebook and pyproject"
    from nbdev.test import nb_test_cells
    cfg = config()
    skip = str(cfg.get('tst_flags', 'notest')).split()
    return {c.idx_ for c in nb_test_cells(path, skip_flags=skip, force_flags=list(flags))}

# ---------------------------------------------------------------- running (in worker processes)

def execute(path: str, run: list[int], timeout: int, cwd: str) -> dict:
    "Run one notebook (cells `run` only) in a fresh kernel; returns its outputs per cell index, seconds and any error"
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', IN_TEST='1', PYDEVD_DISABLE_FILE_VALIDATION='1', OPENCV_LOG_LEVEL='ERROR')
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from traitlets.config import Config
    nb = nbformat.read(path, as_version=4)
    run = set(run)
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'code' and i not in run: c.setdefault('metadata', {}).setdefault('tags', []).append('run-notebooks-skip')
    t0, error, where = time.perf_counter(), None, None
    current = [None]
    # IPC sockets in a private folder: no TCP port that a kernel starting at the same moment could take
    with tempfile.TemporaryDirectory(prefix='nb-kernel-') as sock:
        cfg = Config({'KernelManager': {'transport': 'ipc', 'ip': os.path.join(sock, 'k')}})
        client = NotebookClient(nb, config=cfg, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': cwd}},
                                skip_cells_with_tag='run-notebooks-skip', allow_errors=False, record_timing=False,
                                store_widget_state=False, coalesce_streams=True,
                                on_cell_execute=lambda cell, cell_index: current.__setitem__(0, cell_index))
        try: client.execute()
        except CellExecutionError as e:
            msg = re.sub(r'\x1b\[[0-9;]*m', '', str(e)).strip()
            error, where = msg[-3000:] or repr(e), current[0]
        except CellTimeoutError as e: error, where = f'a cell ran longer than {timeout} s: {e}'.strip()[:500], current[0]
        except Exception as e: error, where = f'{type(e).__name__}: {e}'[:3000], current[0]
    outputs = {i: c.get('outputs', []) for i, c in enumerate(nb.cells) if i in run}
    return dict(name=Path(path).name, outputs=json.loads(json.dumps(outputs)), seconds=time.perf_counter() - t0,
                error=error, where=where)

def run_all(paths: list[Path], flags: set[str], workers: int, timeout: int, on_done) -> None:
    "Run `paths`, `workers` at a time, longest first (last known times); `on_done(path, result)` as each finishes"
    try: last = json.loads(TIMES.read_text())
    except (OSError, ValueError): last = {}
    order = sorted(paths, key=lambda p: -last.get(p.name, 60))
    jobs = {p: sorted(cells_to_run(p, flags)) for p in order}
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(order))), mp_context=multiprocessing.get_context('spawn')) as pool:
        futs = {pool.submit(execute, str(p), jobs[p], timeout, str(NBS)): p for p in order}
        for f in as_completed(futs):
            p = futs[f]
            try: res = f.result()
            except Exception as e: res = dict(name=p.name, outputs={}, seconds=0.0, error=f'runner failed: {type(e).__name__}: {e}', where=None)
            res['run'] = jobs[p]
            last[p.name] = round(res['seconds'], 1)
            on_done(p, res)
    TIMES.parent.mkdir(exist_ok=True)
    TIMES.write_text(json.dumps(last, indent=1, sort_keys=True))

# ---------------------------------------------------------------- comparing outputs

_TMP = re.escape(os.path.realpath(tempfile.gettempdir()))
def _paths():
    "Folders that differ between machines, longest first: the fastai data folder, the repository, the home folder"
    out = []
    fh = os.environ.get('FASTAI_HOME') or os.path.join(os.path.expanduser('~'), '.fastai')
    for p, name in ((fh, '<fastai>'), (str(ROOT), '<repo>'), (os.path.expanduser('~'), '<home>')):
        if p and p not in ('/', '.'): out.append((re.compile(re.escape(os.path.realpath(p)) + r'|' + re.escape(p)), name))
    return out

STYLER = re.compile(r'\bT_[0-9a-f]{5}(?=[_"\s#])')  # the random id pandas' Styler gives each table
MASKS = [  # (pattern, replacement), applied in order
    # fastai's data folder under any home: the outputs are written on one machine (its HOME) and checked on others
    (re.compile(r"(?:/[\w.@+-]+)+/\.fastai(?=/|\b)"), '<fastai>'),
    # the marker of a folder built from the shipped digits, which fastai's own download does not have
    (re.compile(r"Path\('[^']*\.mnist_basics\.json'\),\s*"), ''),
    # where the digits came from depends on the machine (fastai's download, or the digits shipped in the package)
    (re.compile(r'^(mnist_sample|mnist_png): .*$', re.M), r'\1: <data source>'),
    (re.compile(r"^'(?:shipped|fastai)'$"), "'<data source>'"),
    (re.compile(r'("source":\s*)"(?:shipped|fastai)"'), r'\1"<data source>"'),
    (re.compile(r"('source':\s*)'(?:shipped|fastai)'"), r"\1'<data source>'"),
    (re.compile(r'(<.*?)( at 0x[0-9a-fA-F]+)(>)'), r'\1\3'),                                     # as nbdev-clean does
    (re.compile(r'\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?'), '<date>'),
    (re.compile(r'\b(?:\d{1,2}:)?\d{2}:\d{2}(?:\.\d+)?(?!\d)'), '<clock>'),                       # 00:01, 0:00:01 (fastprogress, fastai)
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:ms|µs|us|ns|secs?|seconds|min|minutes|it/s|s/it)\b'), '<time>'),
    (re.compile(r'(?<![\w.])\d+\.\d+s\b'), '<time>'),                                                  # 1.23s
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)? s\b'), '<time>'),                                        # 1.23 s, 2 s
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)?\s*(?:times|x|×)\s+(faster|slower|quicker)'), r'<ratio> times \1'),
    (re.compile(r'0x[0-9a-fA-F]{4,}'), '0x<addr>'),                                                # memory addresses
    (re.compile(r'(?:/private)?' + _TMP + r'/[^\s\'"<>)\]},;]*'), '<tmp>'),                         # temporary files and folders
    (re.compile(r'\b[0-9a-f]{32}\b'), '<uuid>'),                                                   # widget model ids
    (STYLER, 'T_<styler>'),
]
PROGRESS = re.compile(r'\|[█\-]*\|\s*(?!100\.00%)\d+(?:\.\d+)?% \[[^\]]*\]\s*')  # an unfinished fastprogress text bar
TIMING_SOURCE = re.compile(r'perf_counter|timeit|time\.time\(|process_time|monotonic|%%?time\b')
NUMBER = re.compile(r'(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])|(?<![\w.])-?\.\d+')
RTOL = 1e-3
IMG_MEAN, IMG_LEVEL, IMG_FRACTION = 2.0, 32, 0.02

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)

def as_terminal(text: str) -> str:
    "What a terminal shows: in each line, a carriage return lets the next text overwrite it (progress bars collapse)"
    return '\n'.join(next((part for part in reversed(line.split('\r')) if part), '') for line in text.split('\n'))

def mask(text: str) -> str:
    for pat, rep in MASKS[:2] + _paths() + MASKS[2:]: text = pat.sub(rep, text)
    return text

def _decimals(tok: str) -> tuple[int, int]:
    "(digits after the point, exponent) of a printed number"
    m = re.match(r'-?(\d*)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$', tok)
    return (len(m.group(2) or ''), int(m.group(3) or 0)) if m else (0, 0)

def numbers_agree(a: str, b: str, exact: bool) -> bool:
    if a == b: return True
    if exact: return False
    fa, fb = float(a), float(b)
    da, ea = _decimals(a); db, eb = _decimals(b)
    if not (da or db or ea < 0 or eb < 0): return False  # whole numbers: equal or not
    ulp = max(10.0**(ea - da), 10.0**(eb - db))
    return abs(fa - fb) <= 1.01*ulp or abs(fa - fb) <= RTOL*max(abs(fa), abs(fb))

def text_differs(a: str, b: str, exact: bool, timing: bool) -> str | None:
    "None if the masked texts agree (numbers within tolerance); else a short description of the first difference"
    a, b = mask(a), mask(b)
    if timing: a, b = (re.sub(r'(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?', '<num>', x) for x in (a, b))
    sa, sb = (re.sub(r'\s+', ' ', NUMBER.sub('#', x)).strip() for x in (a, b))
    na, nb = NUMBER.findall(a), NUMBER.findall(b)
    if sa == sb and len(na) == len(nb):
        bad = [(x, y) for x, y in zip(na, nb) if not numbers_agree(x, y, exact)]
        if not bad: return None
        return f'{bad[0][0]} (committed) != {bad[0][1]} (fresh)' + (f' and {len(bad)-1} more number(s)' if len(bad) > 1 else '')
    diff = [l for l in difflib.unified_diff(a.splitlines(), b.splitlines(), 'committed', 'fresh', lineterm='', n=0)
            if not l.startswith('@@')][2:10]
    return 'text differs (- committed, + fresh):\n      ' + '\n      '.join(l[:160] for l in diff)

def image_differs(a: str, b: str, exact: bool, timing: bool) -> str | None:
    import numpy as np
    from PIL import Image
    ra, rb = base64.b64decode(_text(a)), base64.b64decode(_text(b))
    if ra == rb: return None
    ia, ib = Image.open(io.BytesIO(ra)), Image.open(io.BytesIO(rb))
    if ia.size != ib.size: return f'picture size {ia.size[0]}x{ia.size[1]} (committed) != {ib.size[0]}x{ib.size[1]} (fresh)'
    if timing: return None
    xa, xb = (np.asarray(i.convert('RGBA'), dtype=np.int16) for i in (ia, ib))
    d = np.abs(xa - xb)
    mean, frac = float(d.mean()), float((d.max(-1) > IMG_LEVEL).mean())
    if exact and d.any() or mean > IMG_MEAN or frac > IMG_FRACTION:
        return f'picture differs: mean pixel difference {mean:.2f} levels, {frac:.1%} of pixels by more than {IMG_LEVEL}'
    return None

def normalise(outputs: list) -> list[dict]:
    "Outputs as compared: stream outputs merged per name (as a terminal shows them, unfinished bars dropped)"
    out, streams = [], {}
    for o in outputs:
        if o.get('output_type') == 'stream':
            if o.get('name') in streams: streams[o['name']]['text'] += _text(o.get('text', ''))
            else:
                streams[o.get('name')] = s = {'output_type': 'stream', 'name': o.get('name'), 'text': _text(o.get('text', ''))}
                out.append(s)
        else: out.append(o)
    for s in streams.values(): s['text'] = PROGRESS.sub('', as_terminal(s['text']))
    # stderr holds warnings, whose wording, file names and line numbers come with the library versions: not compared
    return [o for o in out if not (o.get('output_type') == 'stream' and (o.get('name') == 'stderr' or not o['text'].strip()))]

def _kind(o) -> str: return f"{o.get('output_type')} {o.get('name', '')}".strip()

def outputs_differ(old: list, new: list, exact=False, timing=False) -> str | None:
    "None if a cell's committed outputs `old` agree with fresh outputs `new`; else what differs first"
    old, new = normalise(old), normalise(new)
    if [_kind(o) for o in old] != [_kind(o) for o in new]:
        return f'outputs are {[_kind(o) for o in old] or "none"} (committed) but {[_kind(o) for o in new] or "none"} (fresh)'
    for a, b in zip(old, new):
        if a.get('output_type') == 'stream':
            d = text_differs(a['text'], b['text'], exact, timing)
            if d: return f'{a["name"]}: {d}'
            continue
        if a.get('output_type') == 'error':
            d = text_differs(f"{a.get('ename')}: {a.get('evalue')}", f"{b.get('ename')}: {b.get('evalue')}", exact, timing)
            if d: return f'error: {d}'
            continue
        da, db = a.get('data', {}), b.get('data', {})
        if set(da) != set(db): return f'kinds of output {sorted(da)} (committed) but {sorted(db)} (fresh)'
        for mime in sorted(da):
            if mime.startswith('image/') and mime != 'image/svg+xml': d = image_differs(da[mime], db[mime], exact, timing)
            elif isinstance(da[mime], (dict, list)) and not mime.startswith('text/'):
                d = text_differs(json.dumps(da[mime], sort_keys=True), json.dumps(db[mime], sort_keys=True), exact, timing)
            else: d = text_differs(_text(da[mime]), _text(db[mime]), exact, timing)
            if d: return f'{mime}: {d}'
    return None

def first_difference(nb, fresh: dict, exact=False) -> str | None:
    "The first executed cell whose committed outputs disagree with the fresh ones, described; None if all agree"
    for i, c in enumerate(nb.cells):
        if i not in fresh or c.cell_type != 'code': continue
        d = outputs_differ(c.get('outputs', []), fresh[i], exact, bool(TIMING_SOURCE.search(_text(c.source))))
        if d:
            first = next((l for l in _text(c.source).splitlines() if l.strip() and not l.startswith('#|')), '')[:70]
            return f'cell {i} ({first!r}): {d}'
    return None

# ---------------------------------------------------------------- writing outputs

def _stable_ids(o, key: str):
    """pandas Styler gives each table a random id, a widget a random model id: make them ids derived from the notebook
    and cell, so that rewriting the outputs gives the same bytes"""
    import hashlib
    h = hashlib.sha256(key.encode()).hexdigest()
    for mime, v in (o.get('data') or {}).items():
        if mime == 'text/html':
            o['data'][mime] = [STYLER.sub('T_' + h[:5], x) for x in v] if isinstance(v, list) else STYLER.sub('T_' + h[:5], v)
        elif mime == 'application/vnd.jupyter.widget-view+json' and isinstance(v, dict) and 'model_id' in v:
            o['data'][mime] = {**v, 'model_id': h[:32]}
    return o

def write_outputs(path: Path, fresh: dict):
    "Put the fresh outputs into the notebook (cells not run keep theirs), then nbdev-clean it"
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        if i in fresh and c.cell_type == 'code':
            outs = []
            for o in fresh[i]:
                if o.get('output_type') == 'stream':
                    o = {**o, 'text': PROGRESS.sub('', as_terminal(_text(o.get('text', ''))))}
                    if not o['text']: continue
                outs.append(nbformat.from_dict(o))
            c.outputs = [_stable_ids(o, f'{path.stem}:{i}') for o in outs]
            c.execution_count = None
    nbformat.write(nb, path)
    p = subprocess.run([BIN/'nbdev-clean', '--fname', str(path)], cwd=ROOT, capture_output=True, text=True)
    if p.returncode: raise RuntimeError(f'nbdev-clean --fname {path.name} failed: {p.stderr[-1000:]}')

# ---------------------------------------------------------------- main

def refresh_hint(names) -> str:
    return f"refresh with `make outputs NB={' '.join(names)}`" if names else 'refresh with `make outputs`'

def main(argv=None) -> dict:
    global NBS
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--check', action='store_true', help='run and compare with the committed outputs (default)')
    g.add_argument('--write', action='store_true', help='run and write the outputs into the notebooks')
    g.add_argument('--run-only', action='store_true', help='run, compare nothing, write nothing')
    ap.add_argument('--exact', action='store_true', help='compare numbers as printed and pictures pixel for pixel')
    ap.add_argument('--flags', default='', help='test flags whose cells run too (e.g. "slow")')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('NBDEV_WORKERS', 2)))
    ap.add_argument('--timeout', type=int, default=None, help='seconds allowed per cell (default: cell_timeout, 600)')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='the notebooks folder, also the working folder (default nbs/)')
    ap.add_argument('notebooks', nargs='*')
    args = ap.parse_args(argv)
    NBS = Path(args.nbs).resolve()
    import nbformat
    paths = series(args.notebooks)
    timeout = args.timeout or int(config().get('cell_timeout', 600) or 600)
    mode = 'write' if args.write else 'run' if args.run_only else 'check'
    t0 = time.perf_counter()
    print(f"{'running' if mode == 'run' else 'refreshing the outputs of' if mode == 'write' else 'running and checking'} "
          f"{len(paths)} notebook(s), {args.workers} at a time (OMP_NUM_THREADS=1 each)"
          f"{', flags: ' + args.flags if args.flags else ''}", flush=True)
    results = {}
    def done(path, res):
        fresh = {int(k): v for k, v in res['outputs'].items()}
        if res['error']:
            where = f" in cell {res['where']}" if res['where'] is not None else ''
            ok, msg = False, f"error{where}:\n    " + '\n    '.join(res['error'].splitlines()[-25:])
        elif mode == 'write':
            write_outputs(path, fresh); ok, msg = True, 'outputs written'
        elif mode == 'check':
            d = first_difference(nbformat.read(path, as_version=4), fresh, args.exact)
            ok, msg = (True, '') if d is None else (False, f'committed outputs are stale: {d}\n    {refresh_hint([path.stem])} (or `make outputs` for all)')
        else: ok, msg = True, ''
        results[path.name] = (ok, res['seconds'], msg)
        print(f"{'PASS' if ok else 'FAIL'} {path.name} ({res['seconds']:.1f} s){': ' + msg if msg else ''}", flush=True)
    run_all(paths, set(args.flags.split()), args.workers, timeout, done)
    nfail = sum(not ok for ok, _, _ in results.values())
    print(f'{len(results)} notebook(s) in {time.perf_counter()-t0:.0f} s; '
          f"{sum(s for _, s, _ in results.values()):.0f} s of kernel time. Slowest: "
          + ', '.join(f'{n} {s:.0f} s' for n, (_, s, _) in sorted(results.items(), key=lambda kv: -kv[1][1])[:3]))
    if nfail and mode == 'check': print(refresh_hint([n[:-6] for n, (ok, _, _) in results.items() if not ok]))
    print(f'notebooks: {len(results) - nfail} passed, {nfail} failed', flush=True)
    return results

if __name__ == '__main__':
    res = main()
    sys.exit(1 if any(not ok for ok, _, _ in res.values()) else 0)

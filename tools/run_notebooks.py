"""Run notebooks in fresh kernels, two at a time: `make test` (compare) and `make outputs` (--write). Usage: [--write] [NB ...]

An error fails a notebook, except in a cell tagged `raises-exception`. --write puts the outputs in and runs nbdev-clean;
otherwise it names the first cell whose committed outputs differ beyond the README's tolerances (see `outputs_differ`).
"""
from __future__ import annotations
import argparse, base64, difflib, io, json, multiprocessing, os, re, subprocess, sys, tempfile, time
from decimal import Decimal
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import KERNEL_ENV

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TIMES = ROOT/'_proc'/'notebook_times.json'  # last run times, to start the longest notebooks first
BIN = Path(sys.executable).parent
WORKERS, TIMEOUT = 2, 1200  # notebooks at once (one core each); seconds a cell may take (91's three epochs: ~8 min)

def series(names=()) -> list[Path]:
    "The notebooks named (stems or file names), or every notebook in nbs/ (not `_*`, `.*`), sorted"
    if not names: return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    paths = [NBS/f'{Path(n).stem}.ipynb' for n in names]
    if missing := [p.stem for p in paths if not p.is_file()]: sys.exit(f'no notebook {", ".join(missing)} in nbs/')
    return paths

def execute(path: str, timeout: int, cwd: str) -> dict:
    "Run one notebook in a fresh kernel; returns its outputs per cell index, seconds and any error"
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', IN_TEST='1', PYDEVD_DISABLE_FILE_VALIDATION='1', **KERNEL_ENV)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from traitlets.config import Config
    nb = nbformat.read(path, as_version=4)
    t0, error = time.perf_counter(), None
    # IPC sockets in a private folder: no TCP port that a kernel starting at the same moment could take
    with tempfile.TemporaryDirectory(prefix='nb-kernel-') as sock:
        cfg = Config({'KernelManager': {'transport': 'ipc', 'ip': os.path.join(sock, 'k')}})
        client = NotebookClient(nb, config=cfg, timeout=timeout, kernel_name='python3',
                                resources={'metadata': {'path': cwd}}, allow_errors=False, record_timing=False, store_widget_state=False, coalesce_streams=True)
        try: client.execute()
        except Exception as e:  # CellExecutionError ends with the traceback, CellTimeoutError says how long
            msg = str(e) if isinstance(e, (CellExecutionError, CellTimeoutError)) else f'{type(e).__name__}: {e}'
            error = re.sub(r'\x1b\[[0-9;]*m', '', msg).strip()[-3000:] or repr(e)
    outputs = {i: c.get('outputs', []) for i, c in enumerate(nb.cells) if c.cell_type == 'code'}
    return dict(outputs=json.loads(json.dumps(outputs)), seconds=time.perf_counter() - t0, error=error)

def run_all(paths: list[Path], workers: int, timeout: int, on_done) -> None:
    "Run `paths`, `workers` at a time, longest first (last known times); `on_done(path, result)` as each finishes"
    try: last = json.loads(TIMES.read_text())
    except (OSError, ValueError): last = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context('spawn')) as pool:
        futs = {pool.submit(execute, str(p), timeout, str(NBS)): p for p in sorted(paths, key=lambda p: -last.get(p.name, 60))}
        for f in as_completed(futs):
            p = futs[f]
            try: res = f.result()
            except Exception as e: res = dict(outputs={}, seconds=0.0, error=f'runner failed: {e!r}')
            last[p.name] = round(res['seconds'], 1)
            on_done(p, res)
    TIMES.parent.mkdir(exist_ok=True)
    TIMES.write_text(json.dumps(last, indent=1, sort_keys=True))

_TMP = re.escape(os.path.realpath(tempfile.gettempdir()))
def _paths():
    "Folders that differ between machines, longest first: the fastai data folder, the repository, the home folder"
    home = os.path.expanduser('~')
    folders = [(os.environ.get('FASTAI_HOME') or f'{home}/.fastai', '<fastai>'), (str(ROOT), '<repo>'), (home, '<home>')]
    return [(re.compile(re.escape(os.path.realpath(p)) + '|' + re.escape(p)), name) for p, name in folders
            if p not in ('/', '.', '')]

STYLER = re.compile(r'\bT_[0-9a-f]{5}(?=[_"\s#])')  # the random id pandas' Styler gives each table
MASKS = [  # (pattern, replacement), applied in order
    # fastai's data folder under any home: the outputs are written on one machine (its HOME) and checked on others
    (re.compile(r"(?:/[\w.@+-]+)+/\.fastai(?=/|\b)"), '<fastai>'),
    # the marker of a folder built from the shipped digits, which fastai's own download does not have
    (re.compile(r"Path\('[^']*\.mnist_basics\.json'\),\s*"), ''),
    # where the digits came from depends on the machine (fastai's download, or the digits shipped in the package)
    (re.compile(r'^(mnist_sample|mnist_png): .*$', re.M), r'\1: <data source>'),
    (re.compile(r"""(["'])(?:shipped|fastai)\1"""), r'\1<data source>\1'),
    (re.compile(r'(<.*?)( at 0x[0-9a-fA-F]+)(>)'), r'\1\3'),                                     # as nbdev-clean does
    (re.compile(r'\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?'), '<date>'),
    (re.compile(r'\b(?:\d{1,2}:)?\d{2}:\d{2}(?:\.\d+)?(?!\d)'), '<clock>'),  # 00:01, 0:00:01 (fastprogress, fastai)
    # 12 ms, 1.2e-3 seconds, 3 it/s, 1.23s, 2 s (not the 3s of "the 3s and 7s")
    (re.compile(r'(?<![\w.])(?:\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:[mµun]s|secs?|seconds|min|minutes|it/s|s/it)'
                r'|\d+\.\d+s|\d+(?:\.\d+)? s)\b'), '<time>'),
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)?\s*(?:times|x|×)\s+(faster|slower|quicker)'), r'<ratio> times \1'),
    (re.compile(r'0x[0-9a-fA-F]{4,}'), '0x<addr>'),                                                # memory addresses
    (re.compile(r'(?:/private)?' + _TMP + r'/[^\s\'"<>)\]},;]*'), '<tmp>'),  # temporary files and folders
    (re.compile(r'\b[0-9a-f]{32}\b'), '<uuid>'),                                                   # widget model ids
    (STYLER, 'T_<styler>'),
]
PROGRESS = re.compile(r'\|[█\-]*\|\s*(?!100\.00%)\d+(?:\.\d+)?% \[[^\]]*\]\s*')  # an unfinished fastprogress text bar
TIMING_SOURCE = re.compile(r'perf_counter|timeit|time\.time\(|process_time|monotonic|%%?time\b')
NUMBER = re.compile(r'(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])|(?<![\w.])-?\.\d+')
RTOL = 1e-3
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
IMG_MEAN, IMG_LEVEL, IMG_FRACTION = 2.0, 32, 0.02

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)

def as_terminal(text: str) -> str:
    "What a terminal shows: in each line, a carriage return lets the next text overwrite it (progress bars collapse)"
    return '\n'.join(next((part for part in reversed(line.split('\r')) if part), '') for line in text.split('\n'))

def mask(text: str) -> str:
    for pat, rep in MASKS[:2] + _paths() + MASKS[2:]: text = pat.sub(rep, text)
    return text

def numbers_agree(a: str, b: str) -> bool:
    "Printed numbers within one unit of their last digit or RTOL of each other; whole numbers equal"
    if a == b: return True
    ea, eb = Decimal(a).as_tuple().exponent, Decimal(b).as_tuple().exponent  # 0.9168: -4, 1.5e-3: -4, 6131: 0
    fa, fb = float(a), float(b)
    return min(ea, eb) < 0 and abs(fa - fb) <= max(1.01 * 10.0**max(ea, eb), RTOL * max(abs(fa), abs(fb)))

def text_differs(a: str, b: str, timing: bool) -> str | None:
    "None if the masked texts agree (numbers within tolerance); else a short description of the first difference"
    a, b = mask(a), mask(b)
    if timing: a, b = (re.sub(r'(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?', '<num>', x) for x in (a, b))
    sa, sb = (re.sub(r'\s+', ' ', NUMBER.sub('#', x)).strip() for x in (a, b))
    na, nb = NUMBER.findall(a), NUMBER.findall(b)
    if sa == sb and len(na) == len(nb):
        bad = [(x, y) for x, y in zip(na, nb) if not numbers_agree(x, y)]
        if not bad: return None
        more = f' and {len(bad)-1} more number(s)' if len(bad) > 1 else ''
        return f'{bad[0][0]} (committed) != {bad[0][1]} (fresh){more}'
    diff = [l for l in difflib.unified_diff(a.splitlines(), b.splitlines(), 'committed', 'fresh', lineterm='', n=0)
            if not l.startswith('@@')][2:10]
    return 'text differs (- committed, + fresh):\n      ' + '\n      '.join(l[:160] for l in diff)

def image_differs(a: str, b: str, timing: bool) -> str | None:
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
    if mean > IMG_MEAN or frac > IMG_FRACTION:
        return f'picture differs: mean pixel difference {mean:.2f} levels, {frac:.1%} of pixels by more than {IMG_LEVEL}'
    return None

def normalise(outputs: list) -> list[dict]:
    "Outputs as compared: each stream's text merged (as a terminal shows it, unfinished bars dropped)"
    out, streams = [], {}
    for o in outputs:
        if o.get('output_type') != 'stream': out.append(o)
        elif o['name'] in streams: streams[o['name']]['text'] += _text(o.get('text', ''))
        else: out.append(streams.setdefault(o['name'], {**o, 'text': _text(o.get('text', ''))}))
    for s in streams.values(): s['text'] = PROGRESS.sub('', as_terminal(s['text']))
    # stderr holds warnings, whose wording, file names and line numbers come with the library versions: not compared
    return [o for o in out if o.get('output_type') != 'stream' or (o['name'] != 'stderr' and o['text'].strip())]

def _parts(o) -> dict:
    "What of an output is compared, by kind: a stream's text, an error's name and value, or each mime type's data"
    if o.get('output_type') == 'stream': return {o['name']: o['text']}
    if o.get('output_type') == 'error': return {'error': f"{o.get('ename')}: {o.get('evalue')}"}
    return {k: _text(v) if isinstance(v, str) or k.startswith('text/') else json.dumps(v, sort_keys=True)
            for k, v in o.get('data', {}).items()}

def outputs_differ(old: list, new: list, timing=False, file_order=False) -> str | None:
    "None if a cell's committed outputs `old` agree with fresh outputs `new`; else what differs first"
    old, new = [_parts(o) for o in normalise(old)], [_parts(o) for o in normalise(new)]
    if [sorted(p) for p in old] != [sorted(p) for p in new]:
        return f'outputs are {[sorted(p) for p in old]} (committed) but {[sorted(p) for p in new]} (fresh)'
    if file_order: return None  # the output follows the file system's listing order: only its kinds are compared
    for a, b in zip(old, new):
        for kind in sorted(a):
            picture = kind.startswith('image/') and kind != 'image/svg+xml'
            d = (image_differs if picture else text_differs)(a[kind], b[kind], timing)
            if d: return f'{kind}: {d}'
    return None

def first_difference(nb, fresh: dict) -> str | None:
    "The first executed cell whose committed outputs disagree with the fresh ones, described; None if all agree"
    for i, c in enumerate(nb.cells):
        if i not in fresh or c.cell_type != 'code': continue
        d = outputs_differ(c.get('outputs', []), fresh[i], bool(TIMING_SOURCE.search(_text(c.source))),
                           'file-order' in c.get('metadata', {}).get('tags', []))
        if d:
            first = next((l for l in _text(c.source).splitlines() if l.strip() and not l.startswith('#|')), '')[:70]
            return f'cell {i} ({first!r}): {d}'
    return None

def _stable_ids(o, key: str):
    "Styler table ids and widget model ids (random) made from the notebook and cell: rewriting gives the same bytes"
    import hashlib
    h = hashlib.sha256(key.encode()).hexdigest()
    data = o.get('data') or {}
    if 'text/html' in data: data['text/html'] = STYLER.sub('T_' + h[:5], _text(data['text/html']))
    if 'model_id' in data.get(WIDGET_MIME, {}): data[WIDGET_MIME] = {**data[WIDGET_MIME], 'model_id': h[:32]}
    return o

def write_outputs(path: Path, fresh: dict):
    "Put the fresh outputs into the notebook, then nbdev-clean it"
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        if i not in fresh or c.cell_type != 'code': continue
        for o in fresh[i]:
            if o.get('output_type') == 'stream': o['text'] = PROGRESS.sub('', as_terminal(_text(o.get('text', ''))))
        c.outputs = [nbformat.from_dict(_stable_ids(o, f'{path.stem}:{i}')) for o in fresh[i] if o.get('text') != '']
        c.execution_count = None
    nbformat.write(nb, path)
    p = subprocess.run([BIN/'nbdev-clean', '--fname', str(path)], cwd=ROOT, capture_output=True, text=True)
    if p.returncode: raise RuntimeError(f'nbdev-clean --fname {path.name} failed: {p.stderr[-1000:]}')

def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--write', action='store_true', help='write the outputs into the notebooks (default: compare)')
    ap.add_argument('notebooks', nargs='*')
    args = ap.parse_args(argv)
    import nbformat
    paths = series(args.notebooks)
    t0 = time.perf_counter()
    print(f"{'refreshing the outputs of' if args.write else 'running and checking'} "
          f"{len(paths)} notebook(s), {WORKERS} at a time (OMP_NUM_THREADS=1 each)", flush=True)
    results = {}
    def done(path, res):
        fresh = {int(k): v for k, v in res['outputs'].items()}
        if res['error']:
            ok, msg = False, 'error:\n    ' + '\n    '.join(res['error'].splitlines()[-25:])
        elif args.write:
            write_outputs(path, fresh)
            ok, msg = True, 'outputs written'
        else:
            diff = first_difference(nbformat.read(path, as_version=4), fresh)
            ok, msg = not diff, diff and f'committed outputs are stale: {diff}\n    refresh: `make outputs NB={path.stem}`'
        results[path.name] = (ok, res['seconds'], msg or '')
        print(f"{'PASS' if ok else 'FAIL'} {path.name} ({res['seconds']:.1f} s){': ' + msg if msg else ''}", flush=True)
    run_all(paths, WORKERS, TIMEOUT, done)
    nfail = sum(not ok for ok, _, _ in results.values())
    print(f'{len(results)} notebook(s) in {time.perf_counter()-t0:.0f} s; {sum(s for _, s, _ in results.values()):.0f} s of kernel time')
    if nfail and not args.write:
        print(f"refresh with `make outputs NB={' '.join(n[:-6] for n, (ok, _, _) in results.items() if not ok)}`")
    print(f'notebooks: {len(results) - nfail} passed, {nfail} failed', flush=True)
    return results

if __name__ == '__main__':
    res = main()
    sys.exit(1 if any(not ok for ok, _, _ in res.values()) else 0)

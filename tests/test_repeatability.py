"""Running the series twice gives the same outputs, except where an output prints a time.

Every notebook in nbs/ (found when the tests are collected, so new notebooks are included) is run twice in fresh
processes, as `nbdev-test` runs it (same skipped cells, working directory nbs/), two notebooks at a time. The data
is prepared once beforehand in a private FASTAI_HOME, as `make data` does. Then every cell's outputs are compared:
text with times, clocks, memory addresses and temporary paths masked; pictures byte for byte.

What counts as "printing a time", and is therefore not compared exactly:
- durations with a unit (`1.2 s`, `12 ms`), clocks (`00:01`), ratios of times (`264 times faster`);
- the intermediate updates of a text progress bar (how many get printed depends on speed): stream text is compared as
  a terminal shows it, each carriage return letting the next update overwrite the line, and unfinished bars are dropped;
- every decimal number in a cell that measures time (its source calls `perf_counter`, `timeit`, `time.time`, ...),
  with runs of spaces collapsed (table columns widen and narrow with the numbers); that cell's pictures are compared
  by size only.
Random by nature and masked too: memory addresses, temporary paths, widget ids, pandas Styler ids.
"""
from __future__ import annotations
import base64, difflib, hashlib, json, os, re, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, age

NBS = ROOT/'nbs'
HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(p.name for p in NBS.glob('*.ipynb'))

_TMP = re.escape(os.path.realpath(tempfile.gettempdir()))
MASKS = [  # (pattern, replacement), applied in order
    (re.compile(r'\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?'), '<date>'),
    (re.compile(r'\b(?:\d{1,2}:)?\d{2}:\d{2}(?:\.\d+)?(?!\d)'), '<clock>'),                   # 00:01, 0:00:01 (fastprogress, fastai)
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:ms|µs|us|ns|secs?|seconds|min|minutes|it/s|s/it)\b'), '<time>'),
    (re.compile(r'(?<![\w.])\d+\.\d+s\b'), '<time>'),                                          # 1.23s
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)? s\b'), '<time>'),                                    # 1.23 s, 2 s
    (re.compile(r'0x[0-9a-fA-F]{4,}'), '0x<addr>'),                                            # memory addresses
    (re.compile(r'(?:/private)?' + _TMP + r'/[^\s\'"<>)\]},;]*'), '<tmp>'),                          # temporary files and folders
    (re.compile(r'\b[0-9a-f]{32}\b'), '<uuid>'),                                               # widget model ids
    (re.compile(r'\bT_[0-9a-f]{5}(?=[_"\s])'), 'T_<styler>'),                                   # pandas Styler's random table id
    (re.compile(r'(?<![\w.])\d+(?:\.\d+)?\s*(?:times|x|×)\s+(faster|slower|quicker)'), r'<ratio> times \1'),
]
# one update of a fastprogress bar printed as text, except the final one
PROGRESS = re.compile(r'\|[█\-]*\|\s*(?!100\.00%)\d+(?:\.\d+)?% \[[^\]]*\]\s*')
TIMING_SOURCE = re.compile(r'perf_counter|timeit|time\.time\(|process_time|monotonic|%%?time\b')
DECIMAL = re.compile(r'(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?')


def mask(text:str) -> str:
    "`text` with the parts that change from run to run by nature (times, addresses, temp paths) replaced by placeholders"
    for pat, rep in MASKS: text = pat.sub(rep, text)
    return text


def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)


def as_terminal(text:str) -> str:
    "What a terminal shows: in each line, a carriage return lets the next text overwrite it (so progress bars collapse)"
    return '\n'.join(next((part for part in reversed(line.split('\r')) if part), '') for line in text.split('\n'))


def normalise(outputs:list, timing:bool=False) -> list[tuple]:
    "One comparable tuple per output piece: (kind, masked text) or ('image/png', sha256 of the bytes, width x height)"
    out = []
    m = (lambda t: re.sub(r'[ \t]+', ' ', DECIMAL.sub('<num>', mask(t)))) if timing else mask  # table columns move too
    for o in outputs:
        kind = o.get('output_type')
        if kind == 'stream': out.append((f"stream {o.get('name')}", m(PROGRESS.sub('', as_terminal(_text(o.get('text', '')))))))
        elif kind == 'error': out.append(('error', m(f"{o.get('ename')}: {o.get('evalue')}")))
        else:
            for mime, v in sorted((o.get('data') or {}).items()):
                if mime.startswith('image/') and mime != 'image/svg+xml':
                    raw = base64.b64decode(_text(v))
                    out.append((mime, 'timing cell' if timing else hashlib.sha256(raw).hexdigest()[:16], _png_size(raw)))
                elif mime.endswith('json'): out.append((mime, m(json.dumps(v, sort_keys=True))))
                else: out.append((mime, m(_text(v))))
    return out


def _png_size(raw:bytes) -> str:
    if raw[:8] == b'\x89PNG\r\n\x1a\n': return f"{int.from_bytes(raw[16:20], 'big')}x{int.from_bytes(raw[20:24], 'big')}"
    return f'{len(raw)} bytes'


def differences(run1:dict, run2:dict) -> list[str]:
    "Readable descriptions of every cell whose (normalised) outputs differ between the two runs"
    found = []
    c1, c2 = run1['cells'], run2['cells']
    if [c['source'] for c in c1] != [c['source'] for c in c2]: return ['the notebook changed between the two runs']
    for a, b in zip(c1, c2):
        timing = bool(TIMING_SOURCE.search(_text(a['source'])))
        na, nb = normalise(a['outputs'], timing), normalise(b['outputs'], timing)
        if na == nb: continue
        first_line = _text(a['source']).strip().splitlines()[0][:70] if _text(a['source']).strip() else ''
        where = f"cell {a['idx']} ({first_line!r})"
        if len(na) != len(nb): found.append(f"{where}: {len(na)} outputs, then {len(nb)}: {[x[0] for x in na]} / {[x[0] for x in nb]}")
        for x, y in zip(na, nb):
            if x == y: continue
            if x[0].startswith('image/'): found.append(f"{where}: {x[0]} differs: {x[1:]} vs {y[1:]}")
            else:
                diff = difflib.unified_diff(str(x[1]).splitlines(), str(y[1]).splitlines(), 'run 1', 'run 2', lineterm='', n=0)
                found.append(f"{where}: {x[0]} differs:\n    " + '\n    '.join(list(diff)[2:12]))
    return found


@pytest.fixture(scope='session')
def two_runs(tmp_path_factory):
    "{notebook name: (run 1, run 2)}, every notebook run twice in a row, two notebooks at a time"
    from mnist_basics.data import build_embedded
    work = tmp_path_factory.mktemp('repeat')
    home = work/'fastai_home'
    build_embedded(home/'data'/'mnist_sample_embedded', ['3', '7'])
    build_embedded(home/'data'/'mnist_all_digits_embedded', [str(d) for d in range(10)])
    age(home)  # prepared earlier, as `make data` does before a session
    env = {**os.environ, 'FASTAI_HOME': str(home), 'MNIST_BASICS_SOURCE': 'embedded'}
    env.pop('PYTHONPATH', None)

    def job(name):
        runs = []
        for i in (1, 2):
            out = work/f'{name}.{i}.json'
            try:
                p = subprocess.run([sys.executable, str(HERE/'_run_notebook.py'), str(NBS/name), str(out)], env=env,
                                   cwd=NBS, capture_output=True, text=True, timeout=900)
                res = json.loads(out.read_text()) if out.exists() else \
                    {'ok': False, 'seconds': 0, 'cells': [], 'error': f'runner exited {p.returncode}: {p.stderr[-2000:]}'}
            except subprocess.TimeoutExpired: res = {'ok': False, 'seconds': 900, 'cells': [], 'error': 'timed out after 900 s'}
            runs.append(res)
        return name, runs

    t0 = time.perf_counter()
    order = sorted(NOTEBOOKS, key=lambda n: -(NBS/n).stat().st_size)  # big notebooks first, for a fair share of the workers
    with ThreadPoolExecutor(int(os.environ.get('NBDEV_WORKERS', '2'))) as ex: results = dict(ex.map(job, order))
    lines = [f"{n}: {r[0]['seconds']:.1f} s + {r[1]['seconds']:.1f} s" for n, r in sorted(results.items())]
    print(f"\nrepeatability: {len(results)} notebooks run twice in {time.perf_counter()-t0:.0f} s\n  " + '\n  '.join(lines))
    return results


def test_masks_hide_times_not_results():
    "The masks must not hide the numbers the tests are about"
    assert mask("'0.45 s'") == "'<time>'" and mask('12.3 ms') == '<time>' and mask('took 3.2s') == 'took <time>'
    assert mask('00:01') == '<clock>' and mask('0:00:01') == '<clock>' and mask('<function f at 0x7f3a2b1c>') == '<function f at 0x<addr>>'
    assert mask(f'{tempfile.gettempdir()}/tmpab12/emb') == '<tmp>'
    for kept in ['0.9168', 'tensor(0.1114)', '(torch.Size([400, 28, 28])', "{'train/3': 400}", 'accuracy 0.95',
                 'the 3s and 7s', 'epoch 3', '[4:10, 4:10]', 'x[:, 2:5]']:
        assert mask(kept) == kept, kept
    assert mask("'broadcasting is 264 times faster'") == "'broadcasting is <ratio> times faster'"
    bar = ' |████------| 40.00% [2/5 00:00<00:01... accuracy 0.9700] |██████████| 100.00% [5/5 00:01<00:00... accuracy 0.9750]'
    assert PROGRESS.sub('', bar) == ' |██████████| 100.00% [5/5 00:01<00:00... accuracy 0.9750]'
    assert as_terminal('head\n\rEpoch 1 : |--| 0.00%\rEpoch 1 : |██| 100.00%\nnext\n') == 'head\nEpoch 1 : |██| 100.00%\nnext\n'


@pytest.mark.repeat
@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_gives_the_same_outputs_twice(two_runs, name):
    run1, run2 = two_runs[name]
    assert run1['ok'] and run2['ok'], (f"{name} failed on run {'1' if not run1['ok'] else '2'}"
                                       f"{' (and on the other run)' if not (run1['ok'] or run2['ok']) else ' only'}:\n"
                                       f"{(run1['error'] if not run1['ok'] else run2['error'])[-1500:]}")
    diffs = differences(run1, run2)
    assert not diffs, f"{name}: {len(diffs)} output(s) differ between two runs:\n" + '\n'.join(diffs)

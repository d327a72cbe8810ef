"""Benchmarks of the mnist_basics helpers against the chapter's own code, side by side in one run (`make bench`).

On the real data (fastai's MNIST_SAMPLE and MNIST `mnist_png`, found or built by `mnist_basics.sources`), medians:
1. import cost: `import torch` against `import mnist_basics.similarity` and `import mnist_basics.data` (fresh
   processes, interleaved), and what each module adds on top of torch with matplotlib, pandas, fastai made
   unimportable (none of them may be needed at import time);
2. loading folders of PNG files into one float tensor in [0, 1]: the chapter's
   `torch.stack([tensor(Image.open(o)) for o in files]).float()/255` against `load_digits` (mnist_basics.data:
   each file's bytes decoded by OpenCV's `imdecode`, no cache) and, for reference, torchvision's `decode_png`
   on each file's bytes, on `train/3` (6,131 files), the sample's training set (12,396), the whole sample
   (14,434) and mnist_png's training set (60,000); files in the OS file cache; all give the identical tensor
   (checked). Goal: `load_digits` at least 2 x the chapter's way;
3. scoring the pixel-similarity baseline: one image at a time (the chapter's `mnist_distance` per ideal) against
   `PixelSimilarity.score`, on the sample's 2,038 validation images and on mnist_png's 10,000 test images.

Writes the Markdown to benchmarks/results.md (and the numbers to results.json) and prints the table for the README.
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAVY = ('matplotlib', 'pandas', 'fastai', 'fastprogress', 'IPython', 'ipywidgets', 'sklearn', 'scipy')

# ---------------------------------------------------------------- helpers

def median_time(fn, repeats:int) -> tuple[float, object]:
    "Median wall time of `repeats` calls of `fn`, and the last result"
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times), out

def child(*args) -> dict:
    "Run this script in a fresh Python with `args`; it prints one JSON object"
    r = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"child {args} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def ms(t:float) -> str: return f"{t*1000:,.0f} ms" if t < 1 else f"{t:,.2f} s"

def table(header:list[str], rows:list[list]) -> str:
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    return '\n'.join(out + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])

def machine() -> dict:
    import numpy, torch, torchvision, PIL
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    try: cores = len(os.sched_getaffinity(0))
    except AttributeError: cores = os.cpu_count()
    return {'cpu': cpu, 'cores': cores, 'python': platform.python_version(), 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'numpy': numpy.__version__, 'pillow': PIL.__version__, 'os': platform.platform(terse=True),
            'load': os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')}

def classifier():
    try: from mnist_basics.accuracy import PixelSimilarity
    except ImportError: from mnist_basics.similarity import PixelSimilarity
    return PixelSimilarity

# ---------------------------------------------------------------- children (fresh processes)

def child_import(target:str) -> dict:
    t0 = time.perf_counter()
    __import__(target)
    return {'seconds': time.perf_counter() - t0}

def child_modules() -> dict:
    "What each mnist_basics module adds on top of torch, numpy and PIL; heavy libraries are made unimportable"
    import importlib, importlib.abc, pkgutil
    t0 = time.perf_counter(); import torch, numpy, PIL.Image; base = time.perf_counter() - t0
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in HEAVY: raise ImportError(f"refused at import time: {name}")
    sys.meta_path.insert(0, Refuse())
    import mnist_basics
    out = {'torch': base, 'modules': {}}
    for m in sorted(i.name for i in pkgutil.iter_modules(mnist_basics.__path__) if not i.name.startswith('_')):
        t0 = time.perf_counter()
        try: importlib.import_module(f'mnist_basics.{m}'); err = ''
        except ImportError as e: err = str(e)
        out['modules'][m] = {'seconds': time.perf_counter() - t0, 'error': err}
    return out

# ---------------------------------------------------------------- the two ways of loading

def chapter(folders) -> 'torch.Tensor':
    "The chapter's code for each folder: fastcore's `ls().sorted()`, fastai's `tensor`, PIL; the stacks joined"
    import torch
    from PIL import Image
    from fastai.torch_core import tensor
    from fastcore.xtras import Path as FPath
    return torch.cat([torch.stack([tensor(Image.open(o)) for o in FPath(f).ls().sorted()]).float()/255 for f in folders])

def ours(folders) -> 'torch.Tensor':
    import torch
    from mnist_basics.data import load_digits
    return torch.cat([load_digits(f) for f in folders])

def torchvision_png(folders) -> 'torch.Tensor':
    "For reference: torchvision's `decode_png` on each file's bytes (`torch.frombuffer`), files sorted by name"
    import warnings, torch
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from torchvision.io import decode_png
    out = []
    for f in folders:
        files = sorted(p for p in Path(f).iterdir() if p.suffix == '.png')
        out.append(torch.stack([decode_png(torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8))[0] for p in files]).float()/255)
    return torch.cat(out)

# ---------------------------------------------------------------- the benchmarks

def bench_imports(repeats:int) -> tuple[str, dict]:
    targets = ['torch', 'mnist_basics.similarity', 'mnist_basics.data']
    for t in targets: child('import', t)  # warm the file cache; not counted
    times = {t: [] for t in targets}
    for _ in range(repeats):
        for t in targets: times[t].append(child('import', t)['seconds'])
    med = {t: statistics.median(v) for t, v in times.items()}
    mods = child('modules')
    rows = [[f'`import {t}`', ms(med[t]), f"{med[t]/med['torch']:.2f}"] for t in targets]
    mrows = [[f'`mnist_basics.{m}`', ms(v['seconds']), f"**yes**: {v['error']}" if v['error'] else 'no'] for m, v in mods['modules'].items()]
    text = (f"Fresh process for each import, {repeats} rounds interleaved, medians.\n\n" + table(['import', 'median', 'x torch'], rows)
            + "\n\nWhat each module adds once torch, NumPy and PIL are loaded (in this order, so shared parts count once; "
            "matplotlib, pandas, fastai and other heavy libraries made unimportable):\n\n"
            + table(['module', 'adds', 'needs a heavy library at import time'], mrows))
    return text, {'median': med, 'heavy': {m: v['error'] for m, v in mods['modules'].items() if v['error']}}

def bench_loading(cases:dict, repeats:int) -> tuple[str, dict]:
    import torch
    rows, res = [], {}
    for label, folders in cases.items():
        reps = repeats if label != 'mnist_png training' else max(1, min(3, repeats))
        ours(folders); chapter(folders[:1]); torchvision_png(folders[:1])  # warm the OS file cache and the imports; not counted
        t_ch, t_us, t_tv = [], [], []
        for _ in range(reps):  # interleaved, so a busy moment costs every way alike
            t0 = time.perf_counter(); a = chapter(folders); t_ch.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); b = ours(folders); t_us.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); v = torchvision_png(folders); t_tv.append(time.perf_counter() - t0)
        assert torch.equal(a, b) and torch.equal(a, v), f"{label}: the ways of loading gave different tensors"
        c, o, tv = statistics.median(t_ch), statistics.median(t_us), statistics.median(t_tv)
        res[label] = {'n': len(b), 'chapter': c, 'load_digits': o, 'torchvision': tv, 'ratio': c/o, 'repeats': reps}
        rows.append([label, f'{len(b):,}', ms(c), ms(o), f'**{c/o:.1f} x**', ms(tv), f'{c/tv:.1f} x'])
        print(f'  loading {label}: {len(b):,} images, chapter {ms(c)}, load_digits {ms(o)} ({c/o:.1f} x), '
              f'torchvision {ms(tv)} ({c/tv:.1f} x)', flush=True)
    worst = min(r['ratio'] for r in res.values())
    text = ("Time to turn folders of PNG files into one float tensor in [0, 1], files in the OS file cache, medians of "
            f"{repeats} interleaved runs (3 for 60,000 images). Chapter: `torch.stack([tensor(Image.open(o)) for o in "
            "path.ls().sorted()]).float()/255` per folder; `load_digits`: OpenCV's `imdecode` on each file's bytes, "
            "no cache; for reference, torchvision's `decode_png` on each file's bytes. All give the identical tensor "
            f"(checked). Goal: `load_digits` at least 2 x (worst here **{worst:.1f} x**: {'holds' if worst >= 2 else 'fails'}).\n\n"
            + table(['folders', 'images', 'chapter', '`load_digits`', 'speed-up', 'torchvision `decode_png`', 'speed-up'], rows))
    return text, res

def loop_per_image(ideals, classes, stacks) -> dict:
    "The chapter's way, one image at a time: the distance to each ideal in turn, then the nearest"
    import torch
    acc = {}
    for c, s in stacks.items():
        k, right = classes.index(c), 0
        for x in s: right += int(torch.stack([(x - m).abs().mean((-1, -2)) for m in ideals]).argmin()) == k
        acc[c] = right/len(s)
    return acc

def bench_scoring(cases:dict, repeats:int) -> tuple[str, dict]:
    import torch
    PixelSimilarity = classifier()
    rows, res = [], {}
    default = torch.get_num_threads()
    for label, (train, valid) in cases.items():
        model = PixelSimilarity('l1').fit(train)
        n = sum(len(s) for s in valid.values())
        t_loop, acc_loop = median_time(lambda: loop_per_image(model.ideals, model.classes, valid), 1)
        for threads in sorted({default, 1}, reverse=True):
            torch.set_num_threads(threads)
            t, acc = median_time(lambda: model.score(valid), repeats)
            same = all(abs(acc[c] - acc_loop[c]) < 1e-12 for c in valid)
            res[f'{label}, {threads} threads'] = {'label': label, 'n': n, 'threads': threads, 'loop': t_loop, 'score': t, 'ratio': t_loop/t,
                                                  'same': same, 'mean': acc.get('mean')}
            rows.append([label, f'{n:,}', threads, ms(t_loop), ms(t), f'{t_loop/t:.0f} x', 'yes' if same else '**no**',
                         f"{acc['mean']:.4f}" if 'mean' in acc else ''])
        torch.set_num_threads(default)
        print(f'  scoring {label}: loop {ms(t_loop)}, score {ms(t)}', flush=True)
    return ("Pixel similarity (L1), ideals fitted beforehand: the time to score every image. Loop: one image at a time, "
            "one distance per ideal, as the chapter does; `score`: `PixelSimilarity.score`, a whole class at once by "
            "broadcasting, with torch's default threads and with one (the loop is timed once).\n\n"
            + table(['data', 'images', 'torch threads', 'loop', '`score`', 'speed-up', 'same accuracies', 'mean accuracy'], rows)), res

def readme_table(imp:dict, load:dict, score:dict) -> str:
    med = imp['median']
    rows = [['import', f"`import torch`: {med['torch']:.2f} s", f"`import mnist_basics.similarity`: {med['mnist_basics.similarity']:.2f} s",
             f"{med['mnist_basics.similarity']/med['torch']:.2f} x torch; no matplotlib, pandas or fastai"]]
    for label, r in load.items():
        rows.append([f"load {label} ({r['n']:,} images)", ms(r['chapter']), f"`load_digits`: {ms(r['load_digits'])}", f"{r['ratio']:.1f} x faster"])
    for r in score.values():
        if r['threads'] != 1: continue
        rows.append([f"score {r['label']} ({r['n']:,} images, one torch thread)", f"one image at a time: {ms(r['loop'])}",
                     f"`PixelSimilarity.score`: {ms(r['score'])}", f"{r['ratio']:.0f} x faster"])
    return table(['what', "the chapter's way", 'mnist_basics', ''], rows)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5, help='runs per measurement (medians are reported)')
    p.add_argument('--out', default=str(HERE/'results.md'), help='where to write the Markdown ("-" for nowhere)')
    p.add_argument('--no-60k', action='store_true', help="leave out mnist_png's 60,000 training images")
    p.add_argument('--quick', action='store_true', help='train/3 only and 2 repeats, to check that the script works')
    args = p.parse_args(argv)
    if args.quick: args.repeats, args.no_60k = 2, True
    start = time.perf_counter()
    info = machine()
    from mnist_basics.sources import mnist_sample, mnist_all_digits
    from mnist_basics.data import load_split
    sample = mnist_sample(verbose=False)
    folders = lambda root, split: [d for d in sorted((root/split).iterdir()) if d.is_dir() and not d.name.startswith('.')]
    cases = {'`train/3`': [sample/'train'/'3']}
    if not args.quick:
        cases['the sample\'s `train`'] = folders(sample, 'train')
        cases['the whole sample'] = folders(sample, 'train') + folders(sample, 'valid')
    png = None if args.no_60k else mnist_all_digits(verbose=False)
    if png: cases['mnist_png training'] = folders(png, 'training')
    print('imports...', flush=True)
    imp_text, imp = bench_imports(args.repeats)
    print('loading...', flush=True)
    load_text, load = bench_loading(cases, args.repeats)
    print('scoring...', flush=True)
    sc = {'the sample\'s validation set': (load_split(sample, 'train'), load_split(sample, 'valid'))}
    if png: sc['mnist_png test set, ten digits'] = (load_split(png, 'training'), load_split(png, 'testing'))
    score_text, score = bench_scoring(sc, args.repeats)
    readme = readme_table(imp, load, score)
    total = time.perf_counter() - start
    head = (f"Measured by `make bench` (benchmarks/bench.py) in {total:.0f} s on: {info['cpu']}, {info['cores']} cores "
            f"(load average {info['load']:.1f} at the start), {info['os']}, Python {info['python']}, torch {info['torch']}, "
            f"torchvision {info['torchvision']}, NumPy {info['numpy']}, Pillow {info['pillow']}.")
    md = '\n\n'.join([head, '### Summary (the README\'s table)', readme, '### Import cost', imp_text,
                      '### Loading folders', load_text, '### Scoring the pixel-similarity baseline', score_text]) + '\n'
    print('\n' + md)
    if args.out != '-':
        Path(args.out).write_text('## Benchmarks\n\n' + md)
        Path(args.out).with_suffix('.json').write_text(json.dumps({'machine': info, 'imports': imp, 'loading': load, 'scoring': score},
                                                                   indent=1, default=str))
    return 0 if min(r['ratio'] for r in load.values()) >= 2 else 1

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] in ('import', 'modules'):
        out = child_import(sys.argv[2]) if sys.argv[1] == 'import' else child_modules()
        print(json.dumps(out))
    else: sys.exit(main())

"""Benchmarks of the mnist_basics helpers against the chapter's own code, side by side in one run (`make bench`).

On the real data (fastai's MNIST_SAMPLE and MNIST `mnist_png`, found or built by `mnist_basics.data`), medians:
1. import cost: `import torch` against `import mnist_basics.data` and `import mnist_basics.cli` (fresh processes,
   interleaved): neither may load torch or fastai at import time, so `mnist-basics --help` answers at once;
2. loading folders of PNG files into one float tensor in [0, 1]: the chapter's
   `torch.stack([tensor(Image.open(o)) for o in files]).float()/255` against `load_digits` (PIL into one
   preallocated array, one division), on `train/3` (6,131 files), the sample's training set (12,396), the whole
   sample (14,434) and mnist_png's training set (60,000); files in the OS file cache; both give the identical
   tensor (checked). Goal: `load_digits` at least as fast as the chapter's way;
3. scoring the pixel-similarity baseline: one image at a time (the chapter's way, one distance per ideal) against
   `PixelSimilarity.predict` (mnist_basics.baseline, a whole stack at once), on the sample's 2,038 validation
   images and on mnist_png's 10,000 test images.

Writes the Markdown to benchmarks/results.md (and the numbers to results.json) and prints the table for the README.
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- helpers

def median_time(fn, repeats:int) -> tuple[float, object]:
    "Median wall time of `repeats` calls of `fn`, and the last result"
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times), out

def child(target:str) -> dict:
    "Import `target` in a fresh Python; return the seconds it took and whether torch or fastai came with it"
    code = (f"import time, sys; t0 = time.perf_counter(); import {target}; t = time.perf_counter() - t0; "
            "import json; print(json.dumps({'seconds': t, 'heavy': sorted({'torch', 'fastai'} & set(sys.modules))}))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"importing {target} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def ms(t:float) -> str: return f"{t*1000:,.0f} ms" if t < 1 else f"{t:,.2f} s"

def table(header:list[str], rows:list[list]) -> str:
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    return '\n'.join(out + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])

def machine() -> dict:
    import numpy, torch, PIL
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    try: cores = len(os.sched_getaffinity(0))
    except AttributeError: cores = os.cpu_count()
    return {'cpu': cpu, 'cores': cores, 'python': platform.python_version(), 'torch': torch.__version__,
            'numpy': numpy.__version__, 'pillow': PIL.__version__, 'os': platform.platform(terse=True),
            'load': os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')}

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

# ---------------------------------------------------------------- the benchmarks

def bench_imports(repeats:int) -> tuple[str, dict]:
    targets = ['torch', 'mnist_basics.data', 'mnist_basics.cli']
    for t in targets: child(t)  # warm the file cache; not counted
    runs = {t: [] for t in targets}
    for _ in range(repeats):
        for t in targets: runs[t].append(child(t))
    med = {t: statistics.median(r['seconds'] for r in v) for t, v in runs.items()}
    heavy = {t: v[-1]['heavy'] for t, v in runs.items()}
    rows = [[f'`import {t}`', ms(med[t]), f"{med[t]/med['torch']:.2f}", ', '.join(heavy[t]) or 'neither'] for t in targets]
    return (f"Fresh process for each import, {repeats} rounds interleaved, medians.\n\n"
            + table(['import', 'median', 'x torch', 'loads torch or fastai'], rows)), {'median': med, 'heavy': heavy}

def bench_loading(cases:dict, repeats:int) -> tuple[str, dict]:
    import torch
    rows, res = [], {}
    for label, folders in cases.items():
        reps = repeats if label != 'mnist_png training' else max(1, min(3, repeats))
        ours(folders[:1]); chapter(folders[:1])  # warm the OS file cache and the imports; not counted
        t_ch, t_us = [], []
        for _ in range(reps):  # interleaved, so a busy moment costs both ways alike
            t0 = time.perf_counter(); a = chapter(folders); t_ch.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); b = ours(folders); t_us.append(time.perf_counter() - t0)
        assert torch.equal(a, b), f"{label}: the two ways of loading gave different tensors"
        c, o = statistics.median(t_ch), statistics.median(t_us)
        res[label] = {'n': len(b), 'chapter': c, 'load_digits': o, 'ratio': c/o, 'repeats': reps}
        rows.append([label, f'{len(b):,}', ms(c), ms(o), f'**{c/o:.2f} x**'])
        print(f'  loading {label}: {len(b):,} images, chapter {ms(c)}, load_digits {ms(o)} ({c/o:.2f} x)', flush=True)
    worst = min(r['ratio'] for r in res.values())
    text = ("Time to turn folders of PNG files into one float tensor in [0, 1], files in the OS file cache, medians of "
            f"{repeats} interleaved runs (3 for 60,000 images). Chapter: `torch.stack([tensor(Image.open(o)) for o in "
            "path.ls().sorted()]).float()/255` per folder; `load_digits`: PIL's `np.asarray(Image.open(f))` into one "
            "preallocated array, then one division. Both give the identical tensor (checked). Goal: `load_digits` at "
            f"least as fast (worst here **{worst:.2f} x**: {'holds' if worst >= 1 else 'fails'}).\n\n"
            + table(['folders', 'images', 'chapter', '`load_digits`', 'speed-up'], rows))
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
    from mnist_basics.baseline import PixelSimilarity, per_class_accuracy
    rows, res = [], {}
    for label, (train, valid) in cases.items():
        model = PixelSimilarity('l1').fit(train)
        x = torch.cat(list(valid.values()))
        targs = torch.cat([torch.full((len(s),), model.classes.index(c)) for c, s in valid.items()])
        t_loop, acc_loop = median_time(lambda: loop_per_image(model.ideals, model.classes, valid), 1)
        t, acc = median_time(lambda: per_class_accuracy(model.predict(x), targs, model.classes), repeats)
        same = all(abs(acc[c] - acc_loop[c]) < 1e-6 for c in valid)
        res[label] = {'n': len(x), 'loop': t_loop, 'predict': t, 'ratio': t_loop/t, 'same': same}
        rows.append([label, f'{len(x):,}', ms(t_loop), ms(t), f'{t_loop/t:.2g} x', 'yes' if same else '**no**'])
        print(f'  scoring {label}: loop {ms(t_loop)}, predict {ms(t)}', flush=True)
    return ("Pixel similarity (L1), ideals fitted beforehand: the time to score every validation image. Loop: one image "
            "at a time, one distance per ideal, as the chapter does; `predict`: `PixelSimilarity.predict` on the whole "
            "stack by broadcasting, then `per_class_accuracy` (the loop is timed once).\n\n"
            + table(['data', 'images', 'loop', '`predict`', 'speed-up', 'same accuracies'], rows)), res

def readme_table(imp:dict, load:dict, score:dict) -> str:
    med = imp['median']
    rows = [['import', f"`import torch`: {med['torch']:.2f} s", f"`import mnist_basics.data`: {med['mnist_basics.data']:.2f} s",
             f"{med['mnist_basics.data']/med['torch']:.2f} x torch; no torch or fastai"]]
    for label, r in load.items():
        rows.append([f"load {label} ({r['n']:,} images)", ms(r['chapter']), f"`load_digits`: {ms(r['load_digits'])}", f"{r['ratio']:.2f} x"])
    for label, r in score.items():
        rows.append([f"score {label} ({r['n']:,} images)", f"one image at a time: {ms(r['loop'])}",
                     f"`PixelSimilarity.predict`: {ms(r['predict'])}", f"{r['ratio']:.2g} x"])
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
    from mnist_basics.data import load_split, mnist_all_digits, mnist_sample
    sample = mnist_sample()
    folders = lambda root, split: [d for d in sorted((root/split).iterdir()) if d.is_dir() and not d.name.startswith('.')]
    cases = {'`train/3`': [sample/'train'/'3']}
    if not args.quick:
        cases['the sample\'s `train`'] = folders(sample, 'train')
        cases['the whole sample'] = folders(sample, 'train') + folders(sample, 'valid')
    png = None if args.no_60k else mnist_all_digits()
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
            f"NumPy {info['numpy']}, Pillow {info['pillow']}.")
    md = '\n\n'.join([head, '### Summary (the README\'s table)', readme, '### Import cost', imp_text,
                      '### Loading folders', load_text, '### Scoring the pixel-similarity baseline', score_text]) + '\n'
    print('\n' + md)
    if args.out != '-':
        Path(args.out).write_text('## Benchmarks\n\n' + md)
        Path(args.out).with_suffix('.json').write_text(json.dumps({'machine': info, 'imports': imp, 'loading': load, 'scoring': score},
                                                                   indent=1, default=str))
    return 0 if min(r['ratio'] for r in load.values()) >= 1 else 1

if __name__ == '__main__': sys.exit(main())

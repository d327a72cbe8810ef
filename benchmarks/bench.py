"""Benchmarks of the mnist_basics helpers, each goal measured side by side in one run (`make bench`).

Measures, with several repeats and medians:
1. import cost: `import torch` against `import mnist_basics.similarity` (fresh processes, interleaved),
   and what each module adds on top of torch (with matplotlib, pandas and fastai made unimportable);
2. loading a class folder: the chapter's list comprehension against `load_digits`, first load and
   cached load, on the embedded sample and on folders of 1,000 / 5,000 / 20,000 real digits;
3. peak memory of each way of loading, 1,000 against 20,000 images (a fresh process each);
4. scoring the pixel-similarity baseline: a per-image Python loop against `PixelSimilarity.score`.

Offline; writes the Markdown tables to stdout and to benchmarks/results.md.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAVY = ('matplotlib', 'pandas', 'fastai', 'fastprogress', 'mlxtend', 'IPython', 'ipywidgets', 'sklearn', 'scipy', 'torchvision')
SIZES = (1000, 5000, 20000)

# ---------------------------------------------------------------- helpers

def median_time(fn, repeats:int) -> tuple[float, object]:
    "Median wall time of `repeats` calls of `fn`, and the last result"
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times), out

def child(*args, env=None) -> dict:
    "Run this script in a fresh Python with `args`; it prints one JSON object"
    r = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(f"child {args} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def ms(t:float) -> str: return f"{t*1000:,.1f} ms" if t < 10 else f"{t:,.1f} s"
def mb(b:float) -> str: return f"{b/2**20:,.1f} MB"

def table(header:list[str], rows:list[list]) -> str:
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    out += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    return '\n'.join(out)

def machine() -> dict:
    import numpy, torch, PIL
    cpu = ''
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    try: cores = len(os.sched_getaffinity(0))
    except AttributeError: cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    return {'cpu': cpu, 'cores': cores, 'python': platform.python_version(), 'torch': torch.__version__,
            'numpy': numpy.__version__, 'pillow': PIL.__version__, 'os': platform.platform(terse=True), 'load': load}

# ---------------------------------------------------------------- children (fresh processes)

def child_import(target:str) -> dict:
    "Time one import statement in this fresh process"
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

def _peak_reset() -> int:
    "Reset the peak resident size to the current one (Linux); return the current resident bytes"
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
    except OSError: pass
    return _status('VmRSS')

def _status(field:str) -> int:
    try:
        for line in open('/proc/self/status'):
            if line.startswith(field + ':'): return int(line.split()[1])*1024
    except OSError: pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024  # no /proc: peak since start

def child_memory(method:str, folder:str) -> dict:
    "Peak extra resident memory of one way of loading `folder`"
    import gc, numpy, torch, PIL.Image
    from mnist_basics.data import load_digits
    fns = {'chapter': lambda: chapter_lean(Path(folder)), 'load_digits': lambda: load_digits(folder)}
    gc.collect()
    before = _peak_reset()
    t = fns[method]()
    return {'peak_extra': _status('VmHWM') - before, 'result_bytes': t.numel()*t.element_size()}

def child_score_memory(n:int) -> dict:
    "Peak extra resident memory of `PixelSimilarity.score` on `n` ten-digit images"
    import gc
    train, stacks = ten_digit_sets(n)
    from mnist_basics.similarity import PixelSimilarity
    model = PixelSimilarity('l1').fit(train)
    gc.collect()
    before = _peak_reset()
    model.score(stacks)
    return {'peak_extra': _status('VmHWM') - before}

# ---------------------------------------------------------------- the ways of loading

def chapter_exact(folder:Path):
    "The chapter's code, word for word: fastcore's `ls`, fastai's `tensor`, PIL"
    import torch
    from PIL import Image
    from fastai.torch_core import tensor
    from fastcore.xtras import Path as FPath
    return torch.stack([tensor(Image.open(o)) for o in FPath(folder).ls().sorted()]).float()/255

def chapter_lean(folder:Path):
    "The same list comprehension without fastai: PIL, NumPy, `torch.as_tensor`"
    import numpy as np, torch
    from PIL import Image
    return torch.stack([torch.as_tensor(np.array(Image.open(folder/n))) for n in sorted(os.listdir(folder))]).float()/255

def make_folders(root:Path, sizes) -> dict:
    "Class folders of `n` PNG files each, repeating the 5,000 real embedded digits, dated an hour back"
    from mnist_basics.data import mnist_all_digits, image_files
    src = mnist_all_digits(verbose=False)
    pngs = [f.read_bytes() for s in ('train', 'valid') for c in sorted(os.listdir(src/s)) if not c.startswith('.')
            for f in image_files(src/s/c)]
    past = time.time_ns() - 3600*10**9  # old enough for load_digits to cache (see SETTLE_SECONDS)
    out = {}
    for n in sizes:
        d = root/f'n{n}'/'digits'; d.mkdir(parents=True)
        for i in range(n):
            fn = d/f'{i:05d}.png'; fn.write_bytes(pngs[i % len(pngs)]); os.utime(fn, ns=(past, past))
        out[n] = d
    return out

# ---------------------------------------------------------------- the benchmarks

def bench_imports(repeats:int) -> tuple[str, dict]:
    targets = ['torch', 'mnist_basics.similarity', 'mnist_basics']
    for t in targets: child('import', t)  # warm the file cache; not counted
    times = {t: [] for t in targets}
    for _ in range(repeats):
        for t in targets: times[t].append(child('import', t)['seconds'])
    med = {t: statistics.median(v) for t, v in times.items()}
    ratio = med['mnist_basics.similarity']/med['torch']
    mods = [child('modules') for _ in range(max(1, repeats//2))]
    names = list(mods[0]['modules'])
    rows = [[f'`import {t}`', ms(med[t]), f"{med[t]/med['torch']:.2f}", f"{min(times[t])*1000:,.0f}-{max(times[t])*1000:,.0f} ms"] for t in targets]
    text = (f"Fresh process for each import, {repeats} rounds interleaved, medians. "
            f"Goal: `mnist_basics.similarity` at most 1.2 x `torch`: **{ratio:.2f} x** ({'holds' if ratio <= 1.2 else 'fails'}).\n\n"
            + table(['import', 'median', 'x torch', 'range'], rows))
    mrows = []
    for m in names:
        secs = statistics.median(x['modules'][m]['seconds'] for x in mods)
        err = mods[0]['modules'][m]['error']
        mrows.append([f'`mnist_basics.{m}`', ms(secs), 'no' if not err else f'**yes**: {err}'])
    text += ("\n\nWhat each module adds once torch, NumPy and PIL are loaded (modules imported in this order, "
             f"so shared parts count once; {', '.join(HEAVY[:3])} and other heavy libraries made unimportable):\n\n"
             + table(['module', 'adds', 'imports a heavy library at import time'], mrows))
    return text, {'import_ratio': ratio, 'torch_s': med['torch'], 'similarity_s': med['mnist_basics.similarity'],
                  'heavy': {m: mods[0]['modules'][m]['error'] for m in names if mods[0]['modules'][m]['error']}}

def bench_loading(folders:dict, repeats:int) -> tuple[str, dict]:
    import torch
    from mnist_basics.data import load_digits, cache_file
    try: chapter_exact(next(iter(folders.values()))); exact = True
    except ImportError: exact = False  # fastai not installed: the lean version is the baseline
    rows, res = [], {}
    for label, folder in folders.items():
        n = len(os.listdir(folder))
        reps = repeats if n < 5000 else min(3, repeats)
        t = {}
        if exact: t['chapter'], ref = median_time(lambda: chapter_exact(folder), reps)
        t['lean'], lean = median_time(lambda: chapter_lean(folder), reps)
        if not exact: ref = lean
        def first():
            shutil.rmtree(cache_file(folder).parent, ignore_errors=True)
            t0 = time.perf_counter(); out = load_digits(folder); return time.perf_counter() - t0, out
        firsts = [first() for _ in range(reps)]
        t['first'], got_first = statistics.median(x[0] for x in firsts), firsts[-1][1]
        t['nocache'], got_nocache = median_time(lambda: load_digits(folder, cache=False), reps)
        t['cached'], got_cached = median_time(lambda: load_digits(folder), reps)
        for got in (lean, got_first, got_nocache, got_cached):
            assert torch.equal(got, ref), f"{folder}: a way of loading gave a different tensor"
        base = min(t.get('chapter', float('inf')), t['lean'])
        res[label] = {'n': n, **t, 'first_speedup': base/t['first'], 'cached_speedup': base/t['cached']}
        rows.append([label, f'{n:,}'] + ([ms(t['chapter'])] if exact else []) + [ms(t['lean']), ms(t['first']), ms(t['nocache']),
                     ms(t['cached']), f"**{base/t['first']:.1f} x**", f"**{base/t['cached']:.0f} x**"])
    header = ['folder', 'images'] + (['chapter (fastai `tensor`)'] if exact else []) + ['chapter without fastai',
              '`load_digits`, first load', '`cache=False`', '`load_digits`, cached', 'first load speed-up', 'cached speed-up']
    worst_first = min(r['first_speedup'] for r in res.values()); worst_cached = min(r['cached_speedup'] for r in res.values())
    text = ("Time to turn one class folder into a float tensor in [0, 1], files in the OS file cache, medians "
            f"({repeats} runs; 3 from 5,000 images up). Speed-ups are against the *faster* of the two chapter versions. "
            "\"First load\" finds no cache, decodes and writes one; `cache=False` only decodes. "
            f"Goals: first load at least 2 x (worst here **{worst_first:.1f} x**: {'holds' if worst_first >= 2 else 'fails'}), "
            f"cached at least 20 x (worst here **{worst_cached:.0f} x**: {'holds' if worst_cached >= 20 else 'fails'}). "
            "Every way gives the identical tensor (checked).\n\n" + table(header, rows))
    return text, res

def bench_memory(folders:dict) -> tuple[str, dict]:
    from mnist_basics.data import cache_file
    rows, res = [], {}
    for n, folder in folders.items():
        r = {'chapter': child('memory', 'chapter', folder)['peak_extra']}
        shutil.rmtree(cache_file(folder).parent, ignore_errors=True)
        first = child('memory', 'load_digits', folder)
        r['first'], size = first['peak_extra'], first['result_bytes']
        r['cached'] = child('memory', 'load_digits', folder)['peak_extra']
        res[n] = {**r, 'result': size}
        rows.append([f'{n:,}', mb(size), mb(r['chapter']), mb(r['first']), mb(r['cached'])])
    return ("Peak resident memory added while loading (fresh process each, Linux `VmHWM` after resetting it), "
            "next to the size of the result itself (n x 784 float32):\n\n"
            + table(['images', 'result tensor', 'chapter', '`load_digits`, first load', '`load_digits`, cached'], rows)), res

def ten_digit_sets(n:int):
    "Training stacks of the ten-digit embedded data, and `n` validation images (500 per class for 5,000), by repeating"
    from mnist_basics.data import mnist_all_digits, load_split
    path = mnist_all_digits(verbose=False)
    train, valid = load_split(path, 'train'), load_split(path, 'valid')
    per = n // len(valid)
    return train, {c: s.repeat(-(-per // len(s)), 1, 1)[:per] for c, s in valid.items()}

def loop_per_class(ideals, classes, stacks) -> dict:
    "The chapter's way, one image at a time: `mnist_distance` to each ideal in turn, then the nearest"
    import torch
    acc = {}
    for c, s in stacks.items():
        k, right = classes.index(c), 0
        for x in s: right += int(torch.stack([(x - m).abs().mean((-1, -2)) for m in ideals]).argmin()) == k
        acc[c] = right/len(s)
    return acc

def loop_per_image(ideals, classes, stacks) -> dict:
    "One image at a time, but all ideals at once by broadcasting"
    acc = {}
    for c, s in stacks.items():
        k, right = classes.index(c), 0
        for x in s: right += int((x - ideals).abs().mean((-1, -2)).argmin()) == k
        acc[c] = right/len(s)
    return acc

def score_chunked(ideals, classes, stacks, chunk:int=32) -> dict:
    "A proposal: the same broadcasting, `chunk` images at a time, so the (chunk, classes, h, w) difference stays small"
    import torch
    acc = {}
    for c, s in stacks.items():
        d = torch.cat([(s[i:i+chunk].unsqueeze(1) - ideals).abs().mean((-1, -2)) for i in range(0, len(s), chunk)])
        acc[c] = (d.argmin(1) == classes.index(c)).sum().item()/len(s)
    return acc

def bench_scoring(sample_path:Path, repeats:int, growth) -> tuple[str, dict]:
    import torch
    from mnist_basics.data import load_split
    from mnist_basics.similarity import PixelSimilarity
    rows, res = [], {}
    default = torch.get_num_threads()
    cases = [('3s and 7s, embedded valid', load_split(sample_path, 'train'), load_split(sample_path, 'valid'))]
    for n in growth: cases.append((f'ten digits, {n:,} images', *ten_digit_sets(n)))
    for label, train, stacks in cases:
        n = sum(len(s) for s in stacks.values())
        model = PixelSimilarity('l1').fit(train)
        reps, slow_reps = (repeats if n < 5000 else min(3, repeats)), (1 if n > 5000 else min(3, repeats))
        # the loops work on tensors too small for torch to split between threads: timed once
        t_img, acc_img = median_time(lambda: loop_per_image(model.ideals, model.classes, stacks), slow_reps)
        t_cls, acc_cls = median_time(lambda: loop_per_class(model.ideals, model.classes, stacks), slow_reps) if n <= 5000 else (float('nan'), acc_img)
        for threads in sorted({default, 1}, reverse=True):
            torch.set_num_threads(threads)
            t_vec, acc = median_time(lambda: model.score(stacks), reps)
            t_ch, acc_ch = median_time(lambda: score_chunked(model.ideals, model.classes, stacks), reps)
            same = all(abs(acc[c] - x[c]) < 1e-12 for x in (acc_img, acc_cls, acc_ch) for c in stacks)
            res[f'{label}, {threads} threads'] = {'n': n, 'threads': threads, 'classes': len(stacks), 'score': t_vec, 'loop_image': t_img,
                'loop_class': t_cls, 'chunked': t_ch, 'vs_loop_class': t_cls/t_vec, 'vs_loop_image': t_img/t_vec,
                'chunked_vs_loop_class': t_cls/t_ch, 'chunked_vs_loop_image': t_img/t_ch, 'same': same, 'mean': acc['mean']}
            rows.append([label, f'{n:,}', threads, ms(t_cls) if t_cls == t_cls else 'not run', ms(t_img), ms(t_vec),
                         f'{t_cls/t_vec:.1f} x' if t_cls == t_cls else '', f'{t_img/t_vec:.1f} x', ms(t_ch),
                         f'{t_cls/t_ch:.0f} x' if t_cls == t_cls else '', f'{t_img/t_ch:.1f} x', 'yes' if same else '**no**'])
        torch.set_num_threads(default)
    return ("Pixel similarity (L1), ideals fitted beforehand: the time to score every image (distances to every ideal, "
            "prediction, per-class accuracy). Loops: one image at a time, with one `mnist_distance` call per ideal as in the "
            "chapter, or with all ideals at once (their tensors are too small for torch to use threads, so they are timed once); "
            "`score`: `PixelSimilarity.score` (mnist_basics.similarity), which broadcasts a whole class at once; *chunked*: the "
            "same arithmetic 32 images at a time (a proposal: bit-for-bit the same distances). Each with torch's default threads "
            "and with one thread. Goals: at least 100 x faster than a per-image loop; ten digits on 5,000 images well under a second.\n\n"
            + table(['data', 'images', 'torch threads', 'loop, per ideal', 'loop, all ideals', '`score`', '`score` vs per-ideal loop',
                     '`score` vs all-ideals loop', 'chunked', 'chunked vs per-ideal loop', 'chunked vs all-ideals loop',
                     'same accuracies'], rows)), res

def bench_growth(load_res:dict, mem_res:dict, score_res:dict, score_mem:dict) -> str:
    rows = []
    lo, hi = min(SIZES), max(SIZES)
    L = {r['n']: r for r in load_res.values()}
    if lo in L and hi in L:
        for key, name in (('lean', 'chapter'), ('first', '`load_digits` first load'), ('cached', '`load_digits` cached')):
            rows.append([f'load: {name}', ms(L[lo][key]), ms(L[hi][key]), f'{L[hi][key]/L[lo][key]:.1f} x',
                         mb(mem_res[lo][key if key != 'lean' else 'chapter']), mb(mem_res[hi][key if key != 'lean' else 'chapter']),
                         f"{mem_res[hi][key if key != 'lean' else 'chapter']/max(1, mem_res[lo][key if key != 'lean' else 'chapter']):.1f} x"])
    import torch
    S = {r['n']: r for k, r in score_res.items() if k.startswith('ten') and r['threads'] == torch.get_num_threads()}
    if lo in S and hi in S:
        rows.append(['score: `PixelSimilarity.score`, 10 classes', ms(S[lo]['score']), ms(S[hi]['score']), f"{S[hi]['score']/S[lo]['score']:.1f} x",
                     mb(score_mem.get(lo, 0)), mb(score_mem.get(hi, 0)), f'{score_mem.get(hi, 0)/max(1, score_mem.get(lo, 1)):.1f} x'])
    return (f"From {lo:,} to {hi:,} images ({hi//lo} x as many). Memory: peak resident memory added (see above).\n\n"
            + table(['what', f'time, {lo:,}', f'time, {hi:,}', 'time grows', f'memory, {lo:,}', f'memory, {hi:,}', 'memory grows'], rows))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5, help='runs per measurement (medians are reported)')
    p.add_argument('--out', default=str(HERE/'results.md'), help='where to write the Markdown ("-" for nowhere)')
    p.add_argument('--quick', action='store_true', help='small sizes and 3 repeats, to check that the script works')
    p.add_argument('--torch-threads', type=int, help="torch's intra-op threads for the scoring (default: torch's own choice)")
    args = p.parse_args(argv)
    if args.torch_threads:
        import torch
        torch.set_num_threads(args.torch_threads)
    global SIZES
    if args.quick: SIZES, args.repeats = (200, 600), 3
    start = time.perf_counter()
    info = machine()
    from mnist_basics.data import mnist_sample
    parts, numbers = [], {'machine': info}
    imp_text, numbers['imports'] = bench_imports(args.repeats)
    with tempfile.TemporaryDirectory(prefix='mnist_basics_bench_') as tmp:
        tmp = Path(tmp)
        sample = mnist_sample(verbose=False)
        emb = tmp/'sample'/'train'/'3'
        shutil.copytree(sample/'train'/'3', emb)  # a copy, so the benchmark never touches the data's own cache
        big = make_folders(tmp, SIZES)
        folders = {f'sample `train/3`': emb, **{f'{n:,} repeated digits': d for n, d in big.items()}}
        load_text, numbers['loading'] = bench_loading(folders, args.repeats)
        mem_sizes = (min(SIZES), max(SIZES))
        mem_text, numbers['memory'] = bench_memory({n: big[n] for n in mem_sizes})
    score_text, numbers['scoring'] = bench_scoring(sample, args.repeats, sorted({*mem_sizes, 5000} if not args.quick else mem_sizes))
    numbers['score_memory'] = {n: child('score_memory', n)['peak_extra'] for n in mem_sizes}
    score_mem_text = ("\n\nPeak resident memory added by `PixelSimilarity.score` (fresh process each): "
                      + ', '.join(f'{n:,} images: {mb(v)}' for n, v in numbers['score_memory'].items()) + '.')
    growth_text = bench_growth(numbers['loading'], numbers['memory'], numbers['scoring'], numbers['score_memory'])
    total = time.perf_counter() - start
    head = (f"Measured by `make bench` (benchmarks/bench.py) in {total:.0f} s on: {info['cpu']}, {info['cores']} cores "
            f"(load average {info['load']:.1f} at the start), {info['os']}, Python {info['python']}, torch {info['torch']}, "
            f"NumPy {info['numpy']}, Pillow {info['pillow']}.")
    md = '\n\n'.join([head, '### Import cost', imp_text, '### Loading a class folder', load_text, mem_text,
                      '### Scoring the pixel-similarity baseline', score_text + score_mem_text,
                      '### Growth', growth_text]) + '\n'
    print(md)
    if args.out != '-':
        Path(args.out).write_text('## Benchmarks\n\n' + md)
        Path(args.out).with_suffix('.json').write_text(json.dumps(numbers, indent=1, default=str))
    return 0

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] in ('import', 'modules', 'memory', 'score_memory'):
        kind, rest = sys.argv[1], sys.argv[2:]
        out = {'import': lambda: child_import(*rest), 'modules': child_modules,
               'memory': lambda: child_memory(*rest), 'score_memory': lambda: child_score_memory(int(rest[0]))}[kind]()
        print(json.dumps(out))
    else: sys.exit(main())

"""Open the series in JupyterLab on your own copies of the notebooks: `make lab`.
Usage: python tools/lab.py [--work DIR] [--fresh] [jupyter lab options...]

JupyterLab opens copies in `_lab/nbs/` (gitignored), so nbs/ stays as committed. After a `git pull`, a copy the learner
typed nothing in (outputs do not count) is refreshed; an edited one is kept as `<name>.mine.ipynb` beside the new
lesson. `--fresh` starts every copy again. Settings (shared with `make lab-test`): tools/lab_settings/overrides.json
(no "Jupyter news" pop-up, no update check, a notebook's kernel shut down when its tab closes); kernels idle for
CULL_MINUTES are shut down even with their tab open.
"""
from __future__ import annotations
import argparse, json, os, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS, WORK, SETTINGS = ROOT/'nbs', ROOT/'_lab'/'nbs', ROOT/'tools'/'lab_settings'
CULL_MINUTES = 20
STATE = '.lessons'  # inside the work folder: the lesson each copy was made from

def sources(nb: Path) -> list:
    "What a learner types: each cell's type and source (outputs, counts and metadata left out)"
    cells = json.loads(nb.read_text(encoding='utf-8')).get('cells', [])
    return [(c.get('cell_type'), ''.join(c.get('source', ''))) for c in cells]

def _shown(p: Path) -> str: return str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)

def _free_name(folder: Path, stem: str) -> Path:
    p, i = folder/f'{stem}.mine.ipynb', 2
    while p.exists(): p, i = folder/f'{stem}.mine-{i}.ipynb', i + 1
    return p

def sync_copies(lessons: Path = LESSONS, work: Path = WORK, fresh: bool = False) -> list[str]:
    "Bring the learner's copies in `work` up to date with `lessons`; returns one line per change"
    if fresh: shutil.rmtree(work, ignore_errors=True)
    state = work/STATE
    state.mkdir(parents=True, exist_ok=True)
    notes = []
    for src in sorted(lessons.iterdir()):
        if src.name.startswith('.') or not src.is_file(): continue
        dst, orig = work/src.name, state/src.name
        if src.suffix != '.ipynb':  # other files (pictures, data) are copied when missing or changed
            if not dst.exists() or dst.read_bytes() != src.read_bytes(): shutil.copy2(src, dst)
            continue
        if dst.exists() and orig.exists() and orig.read_bytes() == src.read_bytes(): continue
        if dst.exists() and (not orig.exists() or sources(dst) != sources(orig)):
            kept = _free_name(work, src.stem)
            dst.rename(kept)
            notes.append(f'{src.name} changed in nbs/; your edited copy is kept as {_shown(kept)}')
        shutil.copy2(src, dst)
        shutil.copy2(src, orig)
    for orig in sorted(state.glob('*.ipynb')):
        if (lessons/orig.name).exists(): continue
        dst = work/orig.name
        if dst.exists() and sources(dst) == sources(orig): dst.unlink()
        elif dst.exists(): notes.append(f'{orig.name} is no longer a lesson; your copy stays in {_shown(work)}')
        orig.unlink()
    return notes

# The kernels' environment, here and in tools/run_notebooks.py and lab_test.py:
# - fastai 2.8's import makes torch 2.14 warn that `torch.jit.script` is deprecated: noise for a learner, hidden;
# - glibc keeps freed blocks of a few MB (PyTorch's temporary tensors) in the process once it has raised its mmap
#   threshold: a fixed threshold of 1 MB gives them back to the system (measured: 10,000 images against ten ideals
#   left a kernel 256 MB bigger without it, 33 MB with it).
KERNEL_ENV = {'PYTHONWARNINGS': 'ignore:`torch.jit.script` is deprecated:FutureWarning',
              'MALLOC_MMAP_THRESHOLD_': str(2**20)}

def lab_command(work: Path = WORK, extra=()) -> list[str]:
    "The `jupyter lab` command line of `make lab`: root folder, settings, kernel culling"
    cmd = [str(Path(sys.executable).parent/'jupyter'), 'lab', f'--ServerApp.root_dir={work}', f'--LabApp.app_settings_dir={SETTINGS}',
           f'--MappingKernelManager.cull_idle_timeout={CULL_MINUTES*60}', '--MappingKernelManager.cull_interval=60',
           '--MappingKernelManager.cull_connected=True']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')  # JupyterLab refuses root otherwise
    return cmd + list(extra)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)  # the rest goes to jupyter
    ap.add_argument('--work', type=Path, default=WORK, help='where the copies go (default _lab/nbs)')
    ap.add_argument('--fresh', action='store_true', help='start every copy again from nbs/')
    args, extra = ap.parse_known_args(argv)
    work = args.work.resolve()
    for line in sync_copies(LESSONS, work, args.fresh): print(line)
    print(f'Opening your copies of the lessons in {_shown(work)}: nbs/ stays as committed. Closing a notebook\'s tab shuts '
          f'its kernel down; kernels idle for {CULL_MINUTES} minutes are shut down too.', flush=True)
    cmd = lab_command(work, extra)
    os.environ.update(KERNEL_ENV)
    os.execv(cmd[0], cmd)

if __name__ == '__main__': main()

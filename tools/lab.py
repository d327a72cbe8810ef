"""`make lab` (usage: lab.py [--fresh] [jupyter lab options...]) opens JupyterLab on copies of the lessons in `_lab/nbs/`
(gitignored), so nbs/ stays as committed. After a `git pull`, a copy the learner typed nothing in is refreshed; an edited
one is kept as `<name>.mine.ipynb` beside the new lesson; `--fresh` starts every copy again. lab_settings/overrides.json:
no news pop-up or update check, a closed tab's kernel shut down. Also what the other tools share: KERNEL_ENV, Chromium, git_state.
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys
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

# The kernels' environment (here, in run_notebooks.py and lab_test.py): fastai 2.8's import makes torch 2.14 warn that
# `torch.jit.script` is deprecated (noise for a learner, hidden); glibc keeps freed blocks of a few MB (PyTorch's
# temporary tensors) once it has raised its mmap threshold: a fixed 1 MB gives them back (measured: 10,000 images
# against ten ideals left a kernel 256 MB bigger without it, 33 MB with it).
KERNEL_ENV = {'PYTHONWARNINGS': 'ignore:`torch.jit.script` is deprecated:FutureWarning',
              'MALLOC_MMAP_THRESHOLD_': str(2**20)}

def lab_command(work: Path = WORK, extra=()) -> list[str]:
    "The `jupyter lab` command line of `make lab`: root folder, settings, kernel culling"
    cull = [f'--MappingKernelManager.cull_idle_timeout={CULL_MINUTES*60}', '--MappingKernelManager.cull_interval=60',
            '--MappingKernelManager.cull_connected=True']
    root = ['--allow-root'] if os.geteuid() == 0 else []  # JupyterLab refuses root otherwise
    return [str(Path(sys.executable).parent/'jupyter'), 'lab', f'--ServerApp.root_dir={work}',
            f'--LabApp.app_settings_dir={SETTINGS}', *cull, *root, *extra]

# headless Chromium for site_test.py and lab_test.py: Debian's, or $CHROMIUM, with no network of its own
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
         '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage']

def chromium_path(target: str) -> str:
    "The Chromium to drive; exits with what to do when there is none (`target`: the make target that installs it)"
    exe = os.environ.get('CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(exe).exists(): sys.exit(f"Chromium not found: `make {target}` installs it, or set CHROMIUM=/path")
    return exe

def git_state() -> set:
    "`git status` lines, each with the content of the file it names"
    lines = subprocess.run(['git', 'status', '--porcelain=v1', '-uall'], cwd=ROOT, capture_output=True, text=True)
    files = {line: ROOT/line[3:].split(' -> ')[-1].strip('"') for line in lines.stdout.splitlines()}
    return {(line, f.read_bytes() if f.is_file() else None) for line, f in files.items()}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)  # the rest goes to jupyter
    ap.add_argument('--fresh', action='store_true', help='start every copy again from nbs/')
    args, extra = ap.parse_known_args(argv)
    for line in sync_copies(fresh=args.fresh): print(line)
    print(f"Opening your copies of the lessons in {_shown(WORK)}: nbs/ stays as committed. Closing a notebook's tab "
          f'shuts its kernel down; kernels idle for {CULL_MINUTES} minutes are shut down too.', flush=True)
    cmd = lab_command(WORK, extra)
    os.environ.update(KERNEL_ENV)
    os.execv(cmd[0], cmd)

if __name__ == '__main__': main()

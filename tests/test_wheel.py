"""The package as others get it: `python -m build` makes a clean sdist and wheel, and the wheel works on its own.

The wheel is installed into a brand-new virtual environment, offline: the dependencies (torch, fastai, ...)
are not downloaded again but reused from the environment running the tests, through a `.pth` file that
adds its site-packages at the *end* of the new environment's path. Everything then runs from a
temporary folder, so nothing can be imported from the repository by mistake.
"""
from __future__ import annotations
import json, os, subprocess, sys, sysconfig, tarfile, time, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ('torch', 'matplotlib', 'pandas', 'fastai', 'fastprogress', 'IPython', 'ipywidgets')
NOT_SHIPPED = ('.ipynb', '.png', '.pyc', '.tmp-')  # notebooks, built images, byte code, temporary build folders
LIGHT = ('data', 'cli')  # the modules `mnist-basics --help` imports: they load torch and fastai only inside functions


def run(cmd, cwd, timeout=180, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope='module')
def built(tmp_path_factory) -> dict:
    "Build the sdist and, from it, the wheel, without network (the build tools of this environment are used)"
    out = tmp_path_factory.mktemp('dist')
    t0 = time.perf_counter()
    run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', out, ROOT], cwd=out)
    wheels, sdists = list(out.glob('*.whl')), list(out.glob('*.tar.gz'))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {'wheel': wheels[0], 'sdist': sdists[0], 'seconds': time.perf_counter() - t0}


def modules() -> list[str]:
    return sorted(p.stem for p in (ROOT/'mnist_basics').glob('*.py') if not p.name.startswith('_'))


def test_wheel_holds_only_the_package(built):
    names = zipfile.ZipFile(built['wheel']).namelist()
    others = {n.split('/')[0] for n in names} - {'mnist_basics'}
    assert len(others) == 1 and others.pop().endswith('.dist-info'), names
    assert not [n for n in names if any(s in n for s in NOT_SHIPPED)], names
    shipped = {Path(n).stem for n in names if n.startswith('mnist_basics/') and n.endswith('.py')}
    assert set(modules()) <= shipped, set(modules()) - shipped
    meta = zipfile.ZipFile(built['wheel']).read(next(n for n in names if n.endswith('dist-info/entry_points.txt'))).decode()
    assert 'mnist-basics = mnist_basics.cli:main' in meta


def test_sdist_is_sane(built):
    names = tarfile.open(built['sdist']).getnames()
    root = names[0].split('/')[0]
    rel = {n[len(root) + 1:] for n in names if n != root}
    for needed in ('pyproject.toml', 'README.md', 'LICENSE', 'PKG-INFO', 'mnist_basics/__init__.py', 'mnist_basics/cli.py',
                   'mnist_basics/mnist/SHA256SUMS', 'mnist_basics/mnist/train-images-idx3-ubyte.gz', 'mnist_basics/mnist/t10k-labels-idx1-ubyte.gz'):
        assert needed in rel, (needed, sorted(rel))
    assert not [n for n in rel if any(s in n for s in NOT_SHIPPED) or n.startswith(('nbs/', '.venv', '_docs', '_site', '_proc', 'node_modules'))], sorted(rel)


@pytest.fixture(scope='module')
def venv(built, tmp_path_factory) -> Path:
    "A fresh virtual environment with the wheel installed and the dependencies borrowed from this one"
    root = tmp_path_factory.mktemp('venv')
    env = root/'env'
    run([sys.executable, '-m', 'venv', '--without-pip', env], cwd=root)
    py = env/('Scripts/python.exe' if os.name == 'nt' else 'bin/python')
    site = Path(run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], cwd=root).stdout.strip())
    # appended after the new site-packages, so the wheel's copy of mnist_basics wins over the editable one
    (site/'zz_borrowed_dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    run([sys.executable, '-m', 'pip', '--python', py, 'install', '--no-deps', '--no-index', '--no-cache-dir',
         '--disable-pip-version-check', '--quiet', built['wheel']], cwd=root)
    return env


def test_light_modules_import_from_the_wheel_without_torch(venv):
    py = venv/('Scripts/python.exe' if os.name == 'nt' else 'bin/python')
    code = ("import importlib, json, sys\n"
            f"files = {{m: importlib.import_module('mnist_basics.' + m).__file__ for m in {LIGHT!r}}}\n"
            f"heavy = sorted({{k.split('.')[0] for k in sys.modules}} & set({HEAVY!r}))\n"
            "print(json.dumps({'files': files, 'heavy': heavy}))")
    r = run([py, '-c', code], cwd=venv.parent)
    out = json.loads(r.stdout)
    assert all(Path(f).resolve().is_relative_to(venv.resolve()) for f in out['files'].values()), out['files']
    assert out['heavy'] == [], f"importing {LIGHT} pulled in {out['heavy']} (import them inside the functions that need them)"


def test_command_from_the_wheel(venv, real_home):
    """The wheel's own command on the real MNIST_SAMPLE (built offline by conftest's `offline_home`): the book's
    validation counts and accuracies, 926/1010 and 1013/1028; and the help of each command."""
    exe = venv/('Scripts/mnist-basics.exe' if os.name == 'nt' else 'bin/mnist-basics')
    assert exe.exists()
    r = run([exe, 'baseline', '--json'], cwd=venv.parent, env={**os.environ, 'FASTAI_HOME': str(real_home)})
    res = json.loads(r.stdout)
    assert res['n'] == {'3': 1010, '7': 1028}, res
    assert res['accuracy'] == {'3': 926/1010, '7': 1013/1028}, res
    assert (round(res['accuracy']['3'], 4), round(res['accuracy']['7'], 4)) == (0.9168, 0.9854)
    assert res['overall'] == (926 + 1013)/2038 and res['source'] == 'shipped', res
    for cmd, option in (('data', '--path'), ('baseline', '--distance'), ('train', '--model')):
        assert option in run([exe, cmd, '--help'], cwd=venv.parent).stdout

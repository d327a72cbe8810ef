"""Code that test_builds.py runs in child processes (it must be importable by name, so it lives in its own module)."""
from __future__ import annotations
import contextlib, io, json, os, sys, time
from pathlib import Path

import mnist_basics.sources as sources
from conftest import TINY, folder_digest

sources.LAYOUTS['tiny'] = TINY
sources.mnist_arrays('test')  # read the shipped file once, in the fork server that imports this module
import torchvision.io  # noqa: F401  (imported once here too, so children start building at once)


def build(dest:str, force:bool=False, barrier=None, queue=None):
    "Build the tiny layout at `dest`; with a barrier, start together with the other processes; report (path, digest)"
    if barrier is not None: barrier.wait()
    p = sources.build_folder('tiny', dest, force=force)
    if queue is not None: queue.put((str(p), folder_digest(p)))


def build_and_stop(dest:str, force:bool, where:str, stopped):
    "Build, but freeze at `where` ('before-rename', 'between-renames', 'after-rename') and tell the parent, who kills us"
    calls = []
    real_rename = os.rename
    def freeze():
        stopped.set()
        time.sleep(3600)
    def rename(src, dst):
        calls.append((src, dst))
        last = Path(dst) == Path(dest)
        if where == 'before-rename' and len(calls) == 1: freeze()
        if where == 'between-renames' and last and len(calls) > 1: freeze()
        real_rename(src, dst)
        if where == 'after-rename' and last: freeze()
    sources.os.rename = rename  # this process only: `sources` uses `os.rename`, and we are a throw-away child
    sources.build_folder('tiny', dest, force=force)
    stopped.set()  # `where` never happened: the parent notices that the build finished


def read_only_checks(cases_json:str):
    "Run `mnist-basics` commands in this process (inside a read-only mount) and print what each gave, as JSON"
    from mnist_basics.cli import main
    results = []
    for env, argv in json.loads(cases_json):
        os.environ.update(env)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: status = main(argv)
            except BaseException as e: status = f'raised {type(e).__name__}: {e}'
        results.append({'argv': argv, 'status': status, 'stdout': out.getvalue(), 'stderr': err.getvalue()})
    print(json.dumps(results))


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    read_only_checks(sys.argv[1])

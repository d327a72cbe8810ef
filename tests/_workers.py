"""Code that test_builds.py runs in child processes (it must be importable by name, so it lives in its own module)."""
from __future__ import annotations
import contextlib, io, json, os, sys, time
from pathlib import Path

import mnist_basics.data as data
from conftest import TINY, folder_digest

data.LAYOUTS['tiny'] = TINY
data.mnist_arrays('test')  # read the shipped file once (and warm the imports) in the fork server that imports this module


def build(dest:str, barrier=None, queue=None):
    "Build the tiny layout at `dest`; with a barrier, start together with the other processes; report (path, digest)"
    if barrier is not None: barrier.wait()
    p = data.build_folder('tiny', dest)
    if queue is not None: queue.put((str(p), folder_digest(p)))


def build_and_stop(dest:str, where:str, stopped):
    "Build, but freeze just 'before-rename' or 'after-rename' (the rename that publishes the build) and tell the parent, who kills us"
    real_rename = os.rename
    def freeze():
        stopped.set()
        time.sleep(3600)
    def rename(src, dst):
        if where == 'before-rename': freeze()
        real_rename(src, dst)
        if where == 'after-rename': freeze()
    data.os.rename = rename  # this process only: `data` uses `os.rename`, and we are a throw-away child
    data.build_folder('tiny', dest)
    stopped.set()  # `where` never happened: the parent notices that the build finished


def read_only_checks(cases_json:str):
    "Run `mnist-basics` commands in this process (inside a read-only mount) and print what each gave, as JSON"
    from mnist_basics.cli import main
    results = []
    for env, argv in json.loads(cases_json):
        os.environ.update(env)
        from fastai.data.external import fastai_cfg
        fastai_cfg.cache_clear()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: status = main(argv)
            except BaseException as e: status = f'raised {type(e).__name__}: {e}'
        results.append({'argv': argv, 'status': status, 'stdout': out.getvalue(), 'stderr': err.getvalue()})
    print(json.dumps(results))


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    read_only_checks(sys.argv[1])

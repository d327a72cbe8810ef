"""Run one notebook exactly as `nbdev-test` does (same skipped cells, working directory nbs/) and save its outputs.

Usage: python tests/_run_notebook.py NOTEBOOK OUT.json
Writes {"ok": bool, "seconds": float, "error": str, "cells": [{"idx", "id", "source", "outputs"}]}.
"""
import contextlib, io, json, sys, time, traceback
from pathlib import Path


def run(nb_path:Path) -> dict:
    import nbdev.test as nbtest
    from nbdev.config import get_config
    cfg = get_config()
    flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    kept = {}
    nbtest.write_nb = lambda nb, fn: kept.setdefault('nb', nb)  # `save=True` hands us the executed notebook
    err = io.StringIO()
    t0 = time.perf_counter()
    real_stderr = sys.__stderr__
    sys.__stderr__ = err  # test_nb writes the failing cell's traceback there
    try:
        ok, _ = nbtest.test_nb(nb_path, skip_flags=flags, basepath=cfg.config_path, save=True,
                               cell_timeout=cfg.get('cell_timeout') or 600)
    except BaseException:
        ok = False
        err.write(traceback.format_exc())
    finally:
        sys.__stderr__ = real_stderr
    seconds = time.perf_counter() - t0
    cells = []
    nb = kept.get('nb')
    if nb is not None:
        for c in nb.cells:
            if c.cell_type != 'code': continue
            cells.append({'idx': c.get('idx_'), 'id': c.get('id'), 'source': c.source, 'outputs': c.get('outputs', [])})
    return {'ok': bool(ok), 'seconds': seconds, 'error': err.getvalue()[-3000:],
            'cells': cells}


if __name__ == '__main__':
    nb_path, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    with contextlib.redirect_stdout(io.StringIO()):
        res = run(nb_path)
    out.write_text(json.dumps(res, default=str))

"""`make lab` works on copies of the lessons (tools/lab.py): what happens to a learner's copies when lessons change."""
from __future__ import annotations
import json, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from lab import lab_command, sync_copies  # noqa: E402


def nb(*sources, outputs=()):
    "A notebook's text: code cells with these sources and, on the first, these outputs"
    cells = [{'cell_type': 'code', 'source': s, 'metadata': {}, 'outputs': [], 'execution_count': None} for s in sources]
    if outputs: cells[0]['outputs'] = list(outputs)
    return json.dumps({'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5})


def test_copies_follow_lessons_and_keep_what_the_learner_typed(tmp_path):
    lessons, work = tmp_path/'nbs', tmp_path/'_lab'/'nbs'
    lessons.mkdir()
    (lessons/'01_a.ipynb').write_text(nb('x = 1'))
    (lessons/'02_b.ipynb').write_text(nb('y = 2'))
    (lessons/'03_c.ipynb').write_text(nb('z = 3'))
    assert sync_copies(lessons, work) == []
    assert {p.name for p in work.glob('*.ipynb')} == {'01_a.ipynb', '02_b.ipynb', '03_c.ipynb'}
    # the learner runs 01 (outputs only) and types in 02; the lessons folder is never written
    (work/'01_a.ipynb').write_text(nb('x = 1', outputs=[{'output_type': 'stream', 'name': 'stdout', 'text': '1'}]))
    (work/'02_b.ipynb').write_text(nb('y = 2', 'my_answer = 42'))
    assert sync_copies(lessons, work) == []  # nothing changed upstream: copies untouched
    assert 'my_answer' in (work/'02_b.ipynb').read_text() and '"1"' in (work/'01_a.ipynb').read_text()
    # a git pull changes all three lessons and removes 03
    (lessons/'01_a.ipynb').write_text(nb('x = 10'))
    (lessons/'02_b.ipynb').write_text(nb('y = 20'))
    (lessons/'03_c.ipynb').unlink()
    notes = sync_copies(lessons, work)
    assert (work/'01_a.ipynb').read_text() == nb('x = 10')        # only run: refreshed
    assert (work/'02_b.ipynb').read_text() == nb('y = 20')        # the new lesson...
    assert 'my_answer' in (work/'02_b.mine.ipynb').read_text()   # ...and the learner's copy beside it
    assert not (work/'03_c.ipynb').exists()                       # untouched copy of a removed lesson: gone
    assert len(notes) == 1 and '02_b.mine.ipynb' in notes[0]
    # a second edit and another change upstream: the earlier kept copy is not overwritten
    (work/'02_b.ipynb').write_text(nb('y = 20', 'again = 1'))
    (lessons/'02_b.ipynb').write_text(nb('y = 200'))
    sync_copies(lessons, work)
    assert 'my_answer' in (work/'02_b.mine.ipynb').read_text() and 'again' in (work/'02_b.mine-2.ipynb').read_text()
    # --fresh starts again from the lessons
    sync_copies(lessons, work, fresh=True)
    assert {p.name for p in work.glob('*.ipynb')} == {'01_a.ipynb', '02_b.ipynb'}


def test_lab_settings():
    cmd = ' '.join(lab_command(Path('/somewhere')))
    assert '--ServerApp.root_dir=/somewhere' in cmd and '--MappingKernelManager.cull_idle_timeout=1200' in cmd
    assert '--MappingKernelManager.cull_connected=True' in cmd
    settings_dir = cmd.split('--LabApp.app_settings_dir=')[1].split()[0]
    overrides = json.loads((Path(settings_dir)/'overrides.json').read_text())
    assert overrides['@jupyterlab/apputils-extension:notification']['fetchNews'] == 'false'
    assert overrides['@jupyterlab/notebook-extension:tracker']['kernelShutdown'] is True  # a closed tab's kernel stops

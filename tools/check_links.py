"""Links between notebooks must lead somewhere. Usage: python tools/check_links.py [NB ...]

For each notebook (default every `nbs/*.ipynb`), every markdown link to a notebook, such as
`[the seven steps](07_sgd.ipynb#the-seven-steps)`, must name a notebook that exists in `nbs/` and, after
the `#`, the anchor of one of its markdown headings. Anchors are made as Quarto (pandoc) makes them for
the reading site: formatting dropped, lower case, punctuation other than `_`, `-` and `.` dropped, spaces
to hyphens, anything before the first letter dropped. Lines inside code fences are not headings.

Prints one line per notebook; each failure names the notebook, the cell, the link and what is missing.
Exit status 1 if any link is broken. `check(path)` returns the problems of one notebook (for
tools/run_checks.py). `python tools/check_links.py --self-test` checks the anchor rules.
"""
from __future__ import annotations
import json, re, sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
HEADING = re.compile(r'^(#{1,6})\s+(.+?)\s*#*\s*$')
LINK = re.compile(r'\]\(([^)#\s]+\.ipynb)(?:#([^)\s]*))?\)')

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)

def heading_anchor(heading: str) -> str:
    "The anchor Quarto (pandoc) gives a heading: formatting dropped, lower case, punctuation dropped, spaces to hyphens"
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links and images keep their text
    text = re.sub(r'[`*]', '', text).strip().lower()            # code and emphasis marks
    text = ''.join(ch for ch in text if ch.isalnum() or ch in '_-.' or ch.isspace())
    text = re.sub(r'\s+', '-', text)
    text = re.sub(r'^[^a-z]+', '', text)                          # an identifier starts with a letter
    return text or 'section'

def markdown_cells(nb_path: Path) -> list[str]:
    cells = json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']
    return [_text(c['source']) for c in cells if c['cell_type'] == 'markdown']

@lru_cache(maxsize=None)
def anchors(nb_path: Path) -> frozenset[str]:
    "The anchors of every markdown heading in a notebook (lines inside code fences skipped)"
    out = set()
    for src in markdown_cells(nb_path):
        fenced = False
        for line in src.splitlines():
            if line.lstrip().startswith(('```', '~~~')): fenced = not fenced
            m = None if fenced else HEADING.match(line)
            if m: out.add(heading_anchor(m.group(2)))
    return frozenset(out)

def broken_links(markdown: str, nbs_dir: Path = NBS) -> list[str]:
    "Every link to a notebook in `markdown` whose notebook or heading does not exist, with the reason"
    bad = []
    for nb, anchor in LINK.findall(re.sub(r'```.*?```', ' ', markdown, flags=re.S)):
        f = Path(nbs_dir)/nb
        if not f.is_file(): bad.append(f"{nb}: no such notebook")
        elif anchor and anchor not in anchors(f): bad.append(f"{nb}#{anchor}: no such heading")
    return bad

def check(path) -> list[str]:
    "The broken links of one notebook, each as 'NOTEBOOK cell N: LINK: reason'"
    path = Path(path)
    cells = json.loads(path.read_text(encoding='utf-8'))['cells']
    return [f"{path.name} cell {i}: {problem}" for i, c in enumerate(cells) if c['cell_type'] == 'markdown'
            for problem in broken_links(_text(c['source']), path.parent)]

def _self_test():
    cases = {'The seven steps': 'the-seven-steps', "fastai's `SGD` and `Learner`": 'fastais-sgd-and-learner',
             'The layout of `MNIST_SAMPLE`': 'the-layout-of-mnist_sample', 'L1 or RMSE?': 'l1-or-rmse',
             'Softmax and cross-entropy': 'softmax-and-cross-entropy', '3 ways to crop': 'ways-to-crop',
             'Version 2.0 notes': 'version-2.0-notes', '[The docs](https://example.com) *now*': 'the-docs-now'}
    for h, a in cases.items(): assert heading_anchor(h) == a, (h, heading_anchor(h), a)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        nb = {'cells': [{'cell_type': 'markdown', 'source': ['## The seven steps\n', '```\n# not a heading\n```']}]}
        (Path(d)/'07_sgd.ipynb').write_text(json.dumps(nb))
        assert broken_links('[ok](07_sgd.ipynb#the-seven-steps) [whole](07_sgd.ipynb)', Path(d)) == []
        assert broken_links('[typo](07_sgd.ipynb#the-eight-steps)', Path(d)) == ['07_sgd.ipynb#the-eight-steps: no such heading']
        assert broken_links('[code](07_sgd.ipynb#not-a-heading)', Path(d)) == ['07_sgd.ipynb#not-a-heading: no such heading']
        assert broken_links('[gone](99_missing.ipynb#x)', Path(d)) == ['99_missing.ipynb: no such notebook']
    print('check_links self-test: passed')

def main(argv: list[str]) -> int:
    if argv == ['--self-test']: _self_test(); return 0
    paths = [Path(a) for a in argv] or sorted(NBS.glob('*.ipynb'))
    failed = 0
    for p in paths:
        problems = check(p)
        print(f"{p.name}: {'ok' if not problems else f'{len(problems)} broken link(s)'}")
        for pr in problems: print('  ' + pr)
        failed += bool(problems)
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))

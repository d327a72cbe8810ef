"""Numbers quoted in the prose must be numbers the notebook prints: every decimal and every whole number of 100 or more
in a markdown cell (not in code, URLs, tags, names or versions) must be in the committed text output of a code cell of
the same notebook. index.ipynb is left out: its figures come from `make bench`."""
from __future__ import annotations
import json, re
from pathlib import Path

import pytest

from conftest import ROOT

# a number not glued to a word, a dot or a comma group: 6,131 / 0.9168 / 2038 (not 2.8.12, x86_64, ResNet-18's 18)
NUMBER = re.compile(r'(?<![\w.,/])(?<![A-Za-z_]-)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|[.,]\d)')
# what is not prose: fenced code, inline code, HTML comments and tags, link targets, bare URLs
NOT_PROSE = re.compile(r'```.*?```|~~~.*?~~~|`[^`\n]*`|<!--.*?-->|<[^<>\n]+>|\]\([^)\s]*(?:\s+"[^"]*")?\)'
                       r'|\b(?:https?|ftp|file)://\S+|\bwww\.\S+', re.S)

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)

def quoted(md: str) -> list[str]:
    "The numbers of a markdown cell that must be printed somewhere, commas removed, in order"
    out = []
    for m in NUMBER.finditer(NOT_PROSE.sub(' ', md)):
        whole, frac = m.group(1).replace(',', ''), m.group(2) or ''
        if frac or int(whole) >= 100: out.append(whole + frac)
    return out

def printed(nb: dict) -> set[str]:
    "Every number in the committed text outputs of the notebook's code cells, commas removed"
    outputs = [o for c in nb['cells'] for o in c.get('outputs', [])]
    text = '\n'.join([_text(o.get('text', '')) for o in outputs] +
                     [_text(v) for o in outputs for k, v in (o.get('data') or {}).items() if k.startswith('text/')])
    return {m.group(1).replace(',', '') + (m.group(2) or '')
            for m in re.finditer(r'(?<![\d,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?', text)}

def check(path: Path) -> list[str]:
    "What in the notebook's prose is not printed by its code, one line per number"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    have = printed(nb)
    problems = []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'markdown': continue
        src = _text(c['source'])
        for n in dict.fromkeys(quoted(src)):
            if n not in have:
                line = next((l.strip() for l in src.splitlines() if n in l.replace(',', '')), '')[:90]
                problems.append(f'{Path(path).name} cell {i}: {n} is not printed by any code cell ({line!r})')
    return problems


NOTEBOOKS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')) and p.name != 'index.ipynb')

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_numbers_are_printed(nb):
    problems = check(nb)
    assert not problems, '\n'.join(problems)

def test_what_counts_as_a_quoted_number():
    assert quoted('6,131 threes, 6265 sevens, accuracy 0.9168, 28 pixels and 1.5') == ['6131', '6265', '0.9168', '1.5']
    assert quoted('`0.5` and [a](https://x.org/123.4) and ResNet-18, fastai 2.8.12, x86_64, mnist_png, <img width="400">') == []
    assert quoted('from 100-200 and -0.25') == ['100', '200', '0.25']
    nb = {'cells': [{'cell_type': 'markdown', 'source': 'We have 6,131 threes, 0.9168 right and 0.97 maybe.'},
                    {'cell_type': 'code', 'source': 'x', 'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': '6131 0.9168\n'}]}]}
    assert {'6131', '0.9168'} <= printed(nb) and '0.97' not in printed(nb)

"""Numbers quoted in the prose must be numbers the notebook prints (the `prose` stage of tools/run_checks.py).

In each notebook (default every nbs/*.ipynb but index.ipynb, whose figures come from `make bench`), every decimal
number (`0.9168`) and every whole number of 100 or more (`6,131`) in a markdown cell must appear in the committed
text output of some code cell of the same notebook (commas between digit groups and the sign ignored). Not prose:
`code`, fenced code, URLs and link targets, HTML tags, parts of names or versions (`ResNet-18`, `2.8.12`).
"""
from __future__ import annotations
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
EXEMPT = {'index.ipynb'}

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

def notebooks() -> list[Path]:
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')) and p.name not in EXEMPT)

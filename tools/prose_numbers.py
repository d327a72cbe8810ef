"""Numbers quoted in the prose must be numbers the notebook prints. Usage: python tools/prose_numbers.py [NB ...]

For each notebook (default every `nbs/*.ipynb` except `index.ipynb`, whose figures are `make bench`
measurements, not cell outputs), every decimal number (`0.9168`) and every whole number of 100 or more
(`6,131`, `2038`) in a markdown cell must appear in the text output of some code cell of the same notebook,
as printed in the *committed* outputs (stream text, `text/plain`, `text/html`, `text/markdown`). Commas
between digit groups are ignored (6,131 matches 6131); the sign is not part of the number. Ignored: numbers
in `backticks` and fenced code, in URLs and link targets, inside HTML tags, and parts of names or versions
(`ResNet-18`, `mnist_png`, `2.8.12`).

Prints one line per notebook; each failure names the notebook, the cell and the number. Exit status 1 if any
number is not printed. `check(path)` returns the problems of one notebook (for tools/run_checks.py).
"""
from __future__ import annotations
import json, re, sys
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
    texts = []
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream': texts.append(_text(o.get('text', '')))
            for mime, v in (o.get('data') or {}).items():
                if mime.startswith('text/'): texts.append(_text(v))
    found = set()
    for t in texts:
        for m in re.finditer(r'(?<![\d,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?', t): found.add(m.group(1).replace(',', '') + (m.group(2) or ''))
    return found

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

def notebooks(names=()) -> list[Path]:
    if names: return [p if (p := Path(n)).is_file() else NBS/(Path(n).stem + '.ipynb') for n in names]
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')) and p.name not in EXEMPT)

def main(argv=None) -> dict:
    results = {}
    for p in notebooks(sys.argv[1:] if argv is None else argv):
        problems = check(p)
        results[p.name] = problems
        print(f"{'PASS' if not problems else 'FAIL'} prose numbers {p.name}" + ''.join(f'\n    {x}' for x in problems))
    nfail = sum(bool(v) for v in results.values())
    print(f'prose numbers: {len(results) - nfail} passed, {nfail} failed')
    return results

if __name__ == '__main__':
    sys.exit(1 if any(main().values()) else 0)

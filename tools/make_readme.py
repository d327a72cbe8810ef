"""Write README.md from nbs/index.ipynb without Quarto (`make readme`; `make test` checks it changes nothing)."""
import re
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    "The Markdown of the home page: markdown cells as they are, code cells as Python blocks; hidden cells dropped"
    nb = nbformat.read(nb_path, as_version=4)
    parts = ['<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file. -->']
    for cell in nb.cells:
        src = cell.source.strip()
        if not src or re.search(r'^#\|\s*hide\b', src, re.M): continue
        if cell.cell_type == 'markdown':
            # links between notebooks are relative to nbs/ in the notebook, to the repo root here
            parts.append(re.sub(r'\]\((?!nbs/|https?:|#)([^)]+\.ipynb[^)]*)\)', r'](nbs/\1)', src))
        elif cell.cell_type == 'code':
            code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
            if code: parts.append(f'```python\n{code}\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    (ROOT/'README.md').write_text(render())
    print('wrote README.md')

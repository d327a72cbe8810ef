"""`make site`: the reading version of the series in `_site/`, a page and a deck per notebook and Pagefind's search
index, from the committed outputs (nothing is run). Exit status 1 if committed outputs hold an error outside a cell
tagged `raises-exception` (its page still written, with a note).
"""
import ast, copy, functools, itertools, multiprocessing, os, re, shutil, subprocess, sys, time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TEMPLATES = ROOT/'tools'/'site_templates'
NODE = ROOT/'node_modules'
OUT = ROOT/'_site'
LINK = re.compile(r'!?\[([^\]]*)\]\([^)]*\)')  # a Markdown link or image: its text is group 1

def heading_anchor(heading: str) -> str:
    "The anchor Quarto (pandoc) gives a heading: formatting dropped, lower case, punctuation dropped, spaces to hyphens"
    text = re.sub(r'[`*]', '', LINK.sub(r'\1', heading)).strip().lower()
    text = re.sub(r'\s+', '-', ''.join(ch for ch in text if ch.isalnum() or ch.isspace() or ch in '_-.'))
    return re.sub(r'^[^a-z]+', '', text) or 'section'  # an identifier starts with a letter

def strip_md(s: str) -> str:
    "Plain text of Markdown: link text for links, no backticks, no emphasis marks (underscores inside names stay)"
    s = LINK.sub(r'\1', s or '')
    return re.sub(r'(?<!\w)[*_]+|[*_]+(?!\w)', '', s.replace('`', ''))

TITLE = re.compile(r"""(?:\btitles?\s*=|\b(?:suptitle|set_title|title)\()\s*(\[[^\]]*\]|f?(['"]).*?\2)""")  # matplotlib's
QUOTED = re.compile(r"""(f?)(['"])(.*?)\2""")

def figure_alts(nb):
    """Alt text on each figure output (metadata `site_alt`): the cell's `#| fig-alt: ...`, else the matplotlib titles in
    its source (not f-strings), else the first sentence of the Markdown cell before it"""
    prose = ''
    for c in nb.cells:
        if c.cell_type == 'markdown': prose = re.sub(r'```.*?```|<[^>]+>|\$', '', c.source, flags=re.S)
        figures = [o for o in c.get('outputs', []) if {'image/png', 'image/jpeg'} & set(o.get('data', {}))]
        if not figures: continue
        given = re.search(r'^\s*#\|\s*fig-alt:\s*(.+)$', c.source, re.M)
        titles = [s for m in TITLE.finditer(c.source) for f, _, s in QUOTED.findall(m.group(1)) if not f]
        text = ' '.join(strip_md(re.sub(r'^\s*(#+|>|[-*]|\d+\.)\s+', '', l)) for l in prose.splitlines() if l.strip())
        alt = given.group(1) if given else '; '.join(titles) or re.split(r'(?<=[.!?:])\s', text)[0].rstrip(':')
        for o in figures: o.setdefault('metadata', {})['site_alt'] = alt or 'A figure'

TEST_CALL = re.compile(r'^\s*(?:test_\w+\(|assert\b)', re.M)

def for_reading(path: Path, exp: str | None):
    """The committed notebook as its page shows it (nbdev's processors plus `mark_cells`, and a `show_doc` for each
    exported definition that has none), and its first error output outside a cell tagged `raises-exception`"""
    import importlib, nbformat
    from fastcore.nbio import read_nb, nb2str
    from nbdev.process import NBProcessor
    from nbdev.showdoc import show_doc
    from nbdev.processors import add_show_docs, strip_ansi, hide_, hide_line, filter_stream_, rm_header_dash, clean_magics
    nb = read_nb(path)
    figure_alts(nb)
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells for o in c.get('outputs', [])
              if o.get('output_type') == 'error' and 'raises-exception' not in c.get('metadata', {}).get('tags', [])]
    NBProcessor(nb=nb, procs=[add_show_docs], rm_directives=False).process()
    module = None
    if exp:
        try: module = importlib.import_module(f'mnist_basics.{exp}')
        except Exception as e: print(f'  {path.name}: cannot import mnist_basics.{exp} ({type(e).__name__}: {e})')
    for c in [c for c in nb.cells if getattr(c, 'has_sd', False)]:  # their output made from the module, not run
        del c['has_sd']
        try: md = eval(c.source.strip(), {**vars(module), 'show_doc': show_doc})._repr_markdown_()
        except Exception: md = None  # no module, or nothing to show
        if md: c['outputs'] = [{'output_type': 'display_data', 'metadata': {}, 'data': {'text/markdown': md}}]
        else: c['source'] = ''
    NBProcessor(nb=nb, procs=[hide_, mark_cells, hide_line, filter_stream_, strip_ansi, rm_header_dash, clean_magics],
                rm_directives=True).process()
    return nbformat.reads(nb2str(nb), as_version=4), errors[0] if errors else None

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
WIDGET_NOTE = '<div class="site-widget-note">An interactive widget goes here: run this notebook in Jupyter to use it.</div>'
RECORDED = ('<figure class="site-recording"><img src="images/draw_digit.webp" alt="A recording of the canvas: a digit is '
            'drawn with the mouse and classified as it is drawn"><figcaption><strong>A recording</strong>, not a live '
            'canvas (the site has no kernel). To draw a digit yourself: <code>make lab</code>, then lesson 14 '
            '(Accuracy).</figcaption></figure>')  # nbs/images/draw_digit.webp, made by `lab_test.py --record`

def only_imports(src: str) -> bool:
    try: return all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(src).body)
    except SyntaxError: return False

def mark_cells(cell):
    "Decide, from nbdev's directives, what of a cell is shown (runs after the directives were parsed)"
    d = getattr(cell, 'directives_', {}) or {}
    if cell.cell_type == 'code':
        exported = bool(d.keys() & {'export', 'exports', 'exporti'})
        if 'default_exp' in d or d.get('include', '').lower() == 'false' or exported and only_imports(cell.source):
            del cell['source']  # an exported cell of imports only is the module's boilerplate
            return
        tags = cell.setdefault('metadata', {}).setdefault('tags', [])
        if exported: tags.append('site-exported')
        if d.get('echo', '').lower() == 'false' or re.search('(?m)^show_doc', cell.source): tags.append('remove_input')
        if d.get('output', '').lower() == 'false': tags.append('remove_output')
        for o in cell.get('outputs', []):  # a static page has no kernel for a widget: the canvas's recording, or a note
            if WIDGET_MIME in o.get('data', {}):
                o['data'] = {'text/html': RECORDED if 'DrawDigit(' in cell.source else WIDGET_NOTE}
        if not cell.source.strip() and not cell.get('outputs'): del cell['source']

def has_math(nb) -> bool:
    md = '\n'.join(''.join(c['source']) for c in nb.cells if c.cell_type == 'markdown')
    md = re.sub(r'```.*?```|`[^`\n]*`', '', md, flags=re.S)
    return bool(re.search(r'\$\$.+?\$\$|(?<![\\$])\$[^\s$][^$\n]*?(?<!\s)\$(?!\d)|\\\(.+?\\\)|\\\[.+?\\\]', md, re.S))

def marked_slides(nb, name: str = ''):
    """The deck: the cells marked slide, subslide or fragment (`slideshow.slide_type`) but no test (a warning names
    it), each followed by its speaker notes (`slideshow.notes`); with no cell marked, the title and summary alone"""
    from nbformat.v4 import new_markdown_cell
    keep = []
    for c in nb.cells:
        if c.get('metadata', {}).get('slideshow', {}).get('slide_type') not in ('slide', 'subslide', 'fragment'):
            continue
        if 'source' in c and c.cell_type == 'code' and TEST_CALL.search(c.source):
            line = next(line for line in c.source.splitlines() if TEST_CALL.match(line))
            print(f'  warning: {name}: a test cell marked for the slides is left out: {line[:70]!r}')
        elif 'source' in c:
            keep.append(c)
            if c.metadata.slideshow.get('notes'):  # reveal.js's speaker view (press S) shows an aside.notes
                keep.append(new_markdown_cell(c.metadata.slideshow.notes, metadata={'slideshow': {'slide_type': 'notes'}}))
    title = next((c for c in nb.cells if c.cell_type == 'markdown' and re.search(r'^#\s', c.source, re.M)), None)
    if not keep and title is not None:
        keep = [copy.deepcopy(title)]
        keep[0].source = '\n'.join(l for l in title.source.splitlines() if re.match(r'\s*(#\s|>)', l))
    if keep: keep[0].setdefault('metadata', {})['slideshow'] = {'slide_type': 'slide'}
    nb.cells = keep
    return nb

def postprocess(html: str, prefix: str) -> str:
    """Links to notebooks lead to their pages and relative images to their files (`prefix` in front, for pages in a
    sub-folder); headings get Quarto-style anchors too"""
    from bs4 import BeautifulSoup
    # embedded pictures (base64 data: URIs, most of a page's bytes) stand aside while the HTML is parsed: much faster
    data, n = re.findall(r'src="(data:[^"]{200,})"', html), itertools.count()
    html = re.sub(r'src="data:[^"]{200,}"', lambda m: f'src="data:site-{next(n)}"', html)
    soup = BeautifulSoup(html, 'html.parser')
    for a in soup.find_all('a', href=True):
        u = urlsplit(a['href'])
        if not u.scheme and not u.netloc and u.path.endswith('.ipynb'):
            page = u.path.rsplit('/', 1)[-1].removesuffix('.ipynb') + '.html'
            a['href'] = prefix + page + (f'#{u.fragment}' if u.fragment else '')
    for el in soup.select('.jp-Cell-inputWrapper[tabindex]'): del el['tabindex']  # the code, which may scroll, instead
    for el in soup.select('.jp-InputArea-editor, .jp-RenderedMarkdown pre'):
        el.attrs.update({'tabindex': '0', 'role': 'group', 'aria-label': 'code'})
    for img in soup.find_all(['img', 'source'], src=True):
        u = urlsplit(img['src'])
        if not u.scheme and not u.netloc and u.path and not u.path.startswith('/'):
            img['src'] = prefix + img['src']
    ids = {t['id'] for t in soup.find_all(id=True)}
    for h in soup.find_all(re.compile(r'^h[1-6]$'), id=True):
        alias = heading_anchor(h.get_text().rstrip('¶'))
        if alias not in ids:
            ids.add(alias)
            h.insert(0, soup.new_tag('span', attrs={'id': alias, 'class': 'site-anchor'}))
    html = BG_TEXT.sub(text_on, str(soup))
    return re.sub(r'src="data:site-(\d+)"', lambda m: f'src="{data[int(m.group(1))]}"', html)

BG_TEXT = re.compile(r'(background-color: #([0-9a-f]{6});\s*color: )#[0-9a-f]{6}', re.I)

def text_on(m) -> str:
    "Black or white, whichever reads better on the background (pandas' background_gradient may pick neither)"
    lin = [c/255/12.92 if c <= 10 else ((c/255 + 0.055)/1.055)**2.4 for c in bytes.fromhex(m.group(2))]
    return m.group(1) + ('#000000' if 0.2126*lin[0] + 0.7152*lin[1] + 0.0722*lin[2] > 0.179 else '#ffffff')

def lab_css() -> str:
    """The CSS nbconvert's `lab` template inlines in a page (JupyterLab's, its light theme, the template's own style),
    and the dark theme for pages when the reader's is"""
    from jupyter_core.paths import jupyter_path
    d = next(d for d in map(Path, jupyter_path('nbconvert', 'templates', 'lab')) if (d/'static'/'index.css').exists())
    own = re.search(r'<style type="text/css">\s*(/\*.*?)</style>', (d/'index.html.j2').read_text(), re.S).group(1)
    dark = (d/'static'/'theme-dark.css').read_text().replace(':root', 'body.site-body')
    return '\n'.join([(d/'static'/'index.css').read_text(), (d/'static'/'theme-light.css').read_text(), own,
                      f'@media (prefers-color-scheme: dark) {{\n{dark}\n}}'])

def copy_assets():
    "CSS and scripts into `_site/assets`, reveal.js into `_site/slides/reveal.js` (from node_modules: `npm ci`)"
    assets = OUT/'assets'
    assets.mkdir(parents=True)
    (assets/'jupyterlab.css').write_text(lab_css())
    for f in ['site.css', 'site.js']: shutil.copy(TEMPLATES/f, assets/f)
    shutil.copytree(NBS/'images', OUT/'images')  # pictures the notebooks show from files (`images/...`)
    shutil.copy(NODE/'mathjax'/'es5'/'tex-svg-full.js', assets/'mathjax-tex-svg-full.js')
    rv, dest = NODE/'reveal.js', OUT/'slides'/'reveal.js'
    shutil.copytree(rv/'dist', dest/'dist', ignore=shutil.ignore_patterns('*.map', '*.esm.js'))
    shutil.copytree(rv/'plugin'/'notes', dest/'plugin'/'notes', ignore=shutil.ignore_patterns('*.esm.js'))
    shutil.copy(rv/'LICENSE', dest/'LICENSE')

@functools.cache
def exporter(kind: str):
    "nbconvert's exporter for a page or a deck, with our template; cells tagged by `mark_cells` lose input or output"
    from traitlets.config import Config
    from nbconvert import HTMLExporter, SlidesExporter
    c = Config(TagRemovePreprocessor=dict(enabled=True, remove_input_tags={'remove_input'},
                                          remove_all_outputs_tags={'remove_output'}),
               TemplateExporter=dict(extra_template_basedirs=[str(TEMPLATES)], extra_template_paths=[str(TEMPLATES)]),
               SlidesExporter=dict(reveal_url_prefix='reveal.js', reveal_theme='white'))
    if kind == 'page': return HTMLExporter(config=c, template_name='site_page')  # lab alone: reveal's drops cells
    return SlidesExporter(config=c, template_name='site')

def render(i: dict, info: list[dict]) -> str | None:
    "Write the page and the deck of one notebook (in a worker), `i` its entry in the contents `info`; its error if any"
    k = info.index(i)
    nb, error = for_reading(NBS/f"{i['stem']}.ipynb", i['module'])
    site = dict(i, pages=info, current=i['stem'], prev=info[k-1] if k else None, next=(info[k+1:] or [None])[0],
                has_math=has_math(nb), error=error, home=info[0])
    for kind, name, prefix in [('page', i['href'], ''), ('slides', i['slides'], '../')]:
        doc = nb if kind == 'page' else marked_slides(copy.deepcopy(nb), f"{i['stem']}.ipynb")
        resources = {'site': {**site, 'deck': kind == 'slides'}, 'metadata': {'name': i['title']}}
        body, _ = exporter(kind).from_notebook_node(doc, resources=resources)
        if kind == 'slides':  # a link to a heading of this notebook: the deck may not have that heading, the page has
            body = re.sub(r'href="#(?!/)', f'href="../{i["stem"]}.html#', body)
        (OUT/name).write_text(postprocess(body, prefix), encoding='utf-8')
    return error

def contents() -> list[dict]:
    "The series in reading order (`index.ipynb` first, then by file name), from the notebooks as they are in nbs/"
    from fastcore.nbio import read_nb
    from nbdev.frontmatter import nb_frontmatter  # the `# Title` and `> summary` of the first markdown cell
    info = []
    for p in sorted(NBS.glob('[!._]*.ipynb'), key=lambda p: (p.name != 'index.ipynb', p.name)):
        nb = read_nb(p)
        fm = nb_frontmatter(nb)
        code = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
        exp = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', code, re.M)
        info.append(dict(stem=p.stem, href=f'{p.stem}.html', title=strip_md(fm.get('title', p.stem)),
                         summary=strip_md(fm.get('description', '')), module=exp and exp.group(1),
                         slides=f'slides/{p.stem}.slides.html', notebook=f'notebooks/{p.name}'))
    return info

def main():
    t0 = time.perf_counter()
    os.chdir(ROOT)
    info = contents()
    shutil.rmtree(OUT, ignore_errors=True)  # nothing left of notebooks no longer there
    copy_assets()
    import nbconvert, nbdev.showdoc, torch  # noqa: F401  (the heavy imports once, shared by the forked workers)
    with multiprocessing.get_context('fork').Pool(2) as pool:
        errors = pool.starmap(render, [(i, info) for i in info], chunksize=1)
    # the search index of what is in each page's <main data-pagefind-body>, in _site/pagefind/
    pf = subprocess.run([NODE/'.bin'/'pagefind', '--site', OUT], capture_output=True, text=True)
    if pf.returncode: sys.exit(f'pagefind (the search index) failed: {pf.stdout[-2000:]}{pf.stderr[-2000:]}')
    (OUT/'notebooks').mkdir()
    for i in info: shutil.copy(NBS/f"{i['stem']}.ipynb", OUT/i['notebook'])
    size = sum(f.stat().st_size for f in OUT.rglob('*') if f.is_file())
    print(f'site: {len(info)} page(s), {len(info)} slide deck(s) in _site ({size/1e6:.1f} MB), '
          f'from the committed outputs (nothing run), in {time.perf_counter()-t0:.1f} s')
    for i, error in zip(info, errors):
        if error: print(f"  {i['stem']}.ipynb: its committed outputs hold an error ({error}): "
                        f"run `make outputs NB={i['stem']}`")
    sys.exit(1 if any(errors) else 0)

if __name__ == '__main__': main()

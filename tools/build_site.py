"""The reading version of the series: `make site` writes `_site/`, one HTML page per notebook plus slides, from the
committed outputs (nothing is run). Usage: python tools/build_site.py [--no-slides | --slides-only]

What is shown follows nbdev's processors (`#| hide` and exported imports-only cells never, `show_doc` cells by their
output, a `show_doc` added for each exported definition without one); decks hold only the cells marked for the slides,
never a test, with their speaker notes. Pagefind indexes the pages for search. Exit status 1 if committed outputs hold
an error outside a cell tagged `raises-exception` (its page still written, with a note).
"""
from __future__ import annotations
import argparse, ast, copy, itertools, multiprocessing, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TEMPLATES = ROOT/'tools'/'site_templates'
NODE = ROOT/'node_modules'
RECORDING = Path(os.environ.get('SITE_RECORDING', NBS/'images'/'draw_digit.webp'))  # made by lab_test.py --record

def series() -> list[Path]:
    "Notebooks in reading order: `index.ipynb` first, then the rest sorted by file name"
    nbs = [p for p in NBS.glob('*.ipynb') if not p.name.startswith(('.', '_'))]
    return sorted(nbs, key=lambda p: (p.name != 'index.ipynb', p.name))

def heading_anchor(heading: str) -> str:
    "The anchor Quarto (pandoc) gives a heading: formatting dropped, lower case, punctuation dropped, spaces to hyphens"
    text = re.sub(r'[`*]', '', re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)).strip().lower()  # links keep text
    text = re.sub(r'\s+', '-', ''.join(ch for ch in text if ch.isalnum() or ch.isspace() or ch in '_-.'))
    return re.sub(r'^[^a-z]+', '', text) or 'section'  # an identifier starts with a letter

def strip_md(s: str) -> str:
    "Plain text of Markdown: link text for links, no backticks, no emphasis marks (underscores inside names stay)"
    s = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', s or '')
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

QUARTO_LINK = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')  # show_doc's `[text](url){attrs}`: no attrs in Markdown
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
WIDGET_NOTE = '<div class="site-widget-note">An interactive widget goes here: run this notebook in Jupyter to use it.</div>'
LIVE = 'To draw a digit yourself: <code>make lab</code>, then lesson 14 (Accuracy).'
RECORDED = ('<figure class="site-recording"><img src="images/draw_digit.webp" alt="A recording of the canvas: a digit is '
            'drawn with the mouse and classified as it is drawn"><figcaption><strong>A recording</strong>, not a live '
            f'canvas (the site has no kernel). {LIVE}</figcaption></figure>')

def only_imports(src: str) -> bool:
    try: return all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(src).body)
    except SyntaxError: return False

def _tag(cell, tag):
    tags = cell.setdefault('metadata', {}).setdefault('tags', [])
    if tag not in tags: tags.append(tag)

def mark_cells(cell):
    "Decide, from nbdev's directives, what of a cell is shown (runs after the directives were parsed)"
    d = getattr(cell, 'directives_', {}) or {}
    if cell.cell_type == 'code':
        exported = bool(d.keys() & {'export', 'exports', 'exporti'})
        if 'default_exp' in d or d.get('include', '').lower() == 'false' or exported and only_imports(cell.source):
            del cell['source']  # an exported cell of imports only is the module's boilerplate
            return
        if exported: _tag(cell, 'site-exported')
        if d.get('echo', '').lower() == 'false' or re.search('^show_doc', cell.source, re.M): _tag(cell, 'remove_input')
        if d.get('output', '').lower() == 'false': _tag(cell, 'remove_output')
        for o in cell.get('outputs', []):
            data = o.get('data') or {}
            if WIDGET_MIME in data and 'DrawDigit(' in cell.source:  # the canvas: its recording, or how to run it
                o['data'] = {'text/html': RECORDED if RECORDING.is_file() else f'<p class="site-widget-note">{LIVE}</p>'}
            elif WIDGET_MIME in data: o['data'] = {'text/html': WIDGET_NOTE}  # a static page has no kernel for a widget
            elif 'text/markdown' in data:
                link = r'<a class="site-ext-link" href="\2" target="_blank" rel="noopener">\1</a>'
                data['text/markdown'] = QUARTO_LINK.sub(link, ''.join(data['text/markdown']))
        if not cell.source.strip() and not cell.get('outputs'): del cell['source']

def has_math(nb) -> bool:
    md = '\n'.join(''.join(c['source']) for c in nb.cells if c.cell_type == 'markdown')
    md = re.sub(r'```.*?```|`[^`\n]*`', '', md, flags=re.S)
    return bool(re.search(r'\$\$.+?\$\$|(?<![\\$])\$[^\s$][^$\n]*?(?<!\s)\$(?!\d)|\\\(.+?\\\)|\\\[.+?\\\]', md, re.S))

def marked_slides(nb, name: str = ''):
    """The deck: the cells marked slide, subslide or fragment (cell metadata `slideshow.slide_type`) that are not a
    test (a warning names a marked test), each followed by its speaker notes (Markdown in `slideshow.notes`); a
    notebook with no marks gets a deck of its title and summary only."""
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

def doc_url_prefix() -> str:
    "The URL of nbdev's docs site, which show_doc links to for our own symbols (those become local links)"
    from nbdev.config import get_config
    cfg = get_config()
    base = str(cfg.doc_baseurl).strip('/')
    return str(cfg.doc_host).rstrip('/') + (f'/{base}/' if base else '/')

def postprocess(html: str, module_pages: dict[str, str], doc_prefix: str, prefix: str, files: set) -> str:
    """Links to notebooks and to the docs of our own symbols lead to pages (`prefix` in front, for pages in a
    sub-folder); headings get Quarto-style anchors too; relative image files are added to `files` to be copied"""
    from bs4 import BeautifulSoup
    # embedded pictures (base64 data: URIs, most of a page's bytes) stand aside while the HTML is parsed: much faster
    data, n = re.findall(r'src="(data:[^"]{200,})"', html), itertools.count()
    html = re.sub(r'src="data:[^"]{200,}"', lambda m: f'src="data:site-{next(n)}"', html)
    soup = BeautifulSoup(html, 'html.parser')
    for a in soup.find_all('a', href=True):
        href = a['href']
        mod, _, frag = href.removeprefix(doc_prefix).partition('#')  # `{doc_prefix}data.html#sym` -> `00_data.html#sym`
        if href.startswith(doc_prefix) and mod.removesuffix('.html') in module_pages:
            a['href'] = href = prefix + module_pages[mod.removesuffix('.html')] + ('#' + frag if frag else '')
            a['data-site-doclink'] = '1'
        u = urlsplit(href)
        if not u.scheme and not u.netloc and u.path.endswith('.ipynb'):
            page = u.path.rsplit('/', 1)[-1].removesuffix('.ipynb') + '.html'
            a['href'] = prefix + page + (f'#{u.fragment}' if u.fragment else '')
    for el in soup.select('.jp-Cell-inputWrapper[tabindex]'): del el['tabindex']  # the code, which may scroll, instead
    for el in soup.select('.jp-InputArea-editor, .jp-RenderedMarkdown pre'):
        el.attrs.update({'tabindex': '0', 'role': 'group', 'aria-label': 'code'})
    for img in soup.find_all(['img', 'source'], src=True):
        u = urlsplit(img['src'])
        if not u.scheme and not u.netloc and u.path and not u.path.startswith('/'):
            files.add(u.path)
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

DOC_LINK = re.compile(r'<a href="([^"]*)"([^>]*) data-site-doclink="1">(.*?)</a>', re.S)

def unlink_missing(html: str, ids: dict[str, set]) -> str:
    "Doc links to an anchor that its page (key of `ids`) does not have (a symbol not documented there) become text"
    def fix(m):
        page, _, frag = m.group(1).removeprefix('../').partition('#')
        ok = page in ids and (not frag or frag in ids[page])
        return f'<a href="{m.group(1)}"{m.group(2)}>{m.group(3)}</a>' if ok else m.group(3)
    return DOC_LINK.sub(fix, html)

def lab_css() -> str:
    "JupyterLab's notebook CSS as nbconvert's `lab` template inlines it, its dark theme for pages when the reader's is"
    from jupyter_core.paths import jupyter_path
    for d in map(Path, jupyter_path('nbconvert', 'templates', 'lab', 'static')):
        if (d/'index.css').exists():
            dark = (d/'theme-dark.css').read_text().replace(':root', 'body.site-body')
            return '\n'.join([(d/'index.css').read_text(), (d/'theme-light.css').read_text(),
                              f'@media (prefers-color-scheme: dark) {{\n{dark}\n}}'])
    raise FileNotFoundError("nbconvert's lab template CSS")

def copy_assets(out: Path, slides: bool):
    assets = out/'assets'
    assets.mkdir(parents=True, exist_ok=True)
    (assets/'jupyterlab.css').write_text(lab_css())
    for f in ['site.css', 'site.js']: shutil.copy(TEMPLATES/f, assets/f)
    mj = NODE/'mathjax'/'es5'/'tex-svg-full.js'
    if not mj.exists(): sys.exit(f'{mj} is missing: run `npm ci` (make site does) for MathJax and reveal.js')
    shutil.copy(mj, assets/'mathjax-tex-svg-full.js')
    if slides:
        rv = NODE/'reveal.js'
        if not (rv/'dist'/'reveal.js').exists(): sys.exit(f'{rv} is missing: run `npm ci` (make slides does)')
        dest = out/'slides'/'reveal.js'
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(rv/'dist', dest/'dist', ignore=shutil.ignore_patterns('*.map', '*.esm.js'))
        shutil.copytree(rv/'plugin'/'notes', dest/'plugin'/'notes', ignore=shutil.ignore_patterns('*.esm.js'))
        shutil.copy(rv/'LICENSE', dest/'LICENSE')

def exporter(kind: str):
    "nbconvert's exporter for a page or a deck, with our template; cells tagged by `mark_cells` lose input or output"
    from traitlets.config import Config
    from nbconvert import HTMLExporter, SlidesExporter
    c = Config(TagRemovePreprocessor=dict(enabled=True, remove_input_tags={'remove_input'},
                                          remove_all_outputs_tags={'remove_output'}),
               TemplateExporter=dict(extra_template_basedirs=[str(TEMPLATES)], extra_template_paths=[str(TEMPLATES)]),
               SlidesExporter=dict(reveal_url_prefix='reveal.js', reveal_theme='white'))
    if kind == 'page': return HTMLExporter(config=c, template_name='site_page')
    return SlidesExporter(config=c, template_name='site')

_exporters = {}
def render(i: dict, ctx: dict) -> dict:
    "Page and slides HTML for one notebook (in a worker): `i` is its entry in the contents, `ctx` what all pages share"
    info, k = ctx['info'], ctx['info'].index(i)
    nb, error = for_reading(NBS/f"{i['stem']}.ipynb", i['module'])
    site = dict(pages=info, current=i['stem'], prev=info[k-1] if k else None, next=(info[k+1:] or [None])[0],
                title=i['title'], summary=i['summary'], has_math=has_math(nb), error=error,
                slides=ctx['slides'] and i['slides'], notebook=i['notebook'], home=info[0])
    res = dict(stem=i['stem'], error=error, files=set())
    for kind in ['page'] * ctx['pages'] + ['slides'] * ctx['slides']:
        if kind not in _exporters: _exporters[kind] = exporter(kind)
        doc = nb if kind == 'page' else marked_slides(copy.deepcopy(nb), f"{i['stem']}.ipynb")
        resources = {'site': {**site, 'deck': kind == 'slides'}, 'metadata': {'name': i['title']}}
        body, _ = _exporters[kind].from_notebook_node(doc, resources=resources)
        if kind == 'slides':  # a link to a heading of this notebook: the deck may not have that heading, the page has
            body = re.sub(r'href="#(?!/)', f'href="../{i["stem"]}.html#', body)
        prefix = '' if kind == 'page' else '../'
        res[i['href'] if kind == 'page' else i['slides']] = postprocess(body, ctx['module_pages'], ctx['doc_prefix'],
                                                                        prefix, res['files'])
    return res

def contents() -> list[dict]:
    "The series as the contents lists it, from the notebooks as they are in nbs/"
    from fastcore.nbio import read_nb
    from nbdev.frontmatter import nb_frontmatter  # the `# Title` and `> summary` of the first markdown cell
    info = []
    for p in series():
        nb = read_nb(p)
        fm = nb_frontmatter(nb)
        code = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
        exp = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', code, re.M)
        info.append(dict(stem=p.stem, href=f'{p.stem}.html', title=strip_md(fm.get('title', p.stem)),
                         summary=strip_md(fm.get('description', '')), module=exp and exp.group(1),
                         slides=f'slides/{p.stem}.slides.html', notebook=f'notebooks/{p.name}'))
    return info

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (default _site)')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('SITE_WORKERS', 2)), help='pages at once')
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--no-slides', action='store_true', help='pages only')
    g.add_argument('--slides-only', action='store_true', help='slides only (into <out>/slides)')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    os.chdir(ROOT)
    out = Path(args.out).resolve()
    if not (NBS/'index.ipynb').is_file(): sys.exit('nbs/index.ipynb (the home page) not found')
    info = contents()
    ctx = dict(info=info, pages=not args.slides_only, slides=not args.no_slides, doc_prefix=doc_url_prefix(),
               module_pages={i['module']: i['href'] for i in info if i['module']})
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, ctx['slides'])
    import nbconvert, nbdev.showdoc, torch  # noqa: F401  (the heavy imports once, shared by the forked workers)
    with ProcessPoolExecutor(max_workers=max(1, args.workers), mp_context=multiprocessing.get_context('fork')) as pool:
        done = list(pool.map(render, info, [ctx]*len(info)))
    html = {name: r[name] for r in done for name in r if name.endswith('.html')}
    for f in sorted(set().union(*(r['files'] for r in done))):  # pictures shown from files beside the notebooks
        src = (NBS/f).resolve()
        if src.is_file() and src.is_relative_to(NBS):
            (out/f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, out/f)
    (out/'slides').mkdir(exist_ok=True)
    for f in [*out.glob('*.html'), *(out/'slides').glob('*.slides.html')]:  # pages of notebooks no longer there
        if f.relative_to(out).as_posix() not in html and ctx['pages' if f.parent == out else 'slides']: f.unlink()
    pages = {n for n in html if '/' not in n} or {f.name for f in out.glob('*.html')}
    ids = {n: set(re.findall(r'\sid="([^"]*)"', (out/n).read_text(encoding='utf-8') if n not in html else html[n]))
           for n in pages}
    for name, text in html.items(): (out/name).write_text(unlink_missing(text, ids), encoding='utf-8')
    if RECORDING.is_file():  # the canvas's recording (SITE_RECORDING=... names another file, for a test)
        (out/'images').mkdir(exist_ok=True)
        shutil.copy(RECORDING, out/'images'/'draw_digit.webp')
    if ctx['pages']:  # the search index of what is in each page's <main data-pagefind-body>, in out/pagefind/
        pf = subprocess.run([NODE/'.bin'/'pagefind', '--site', out], capture_output=True, text=True)
        if pf.returncode: sys.exit(f'pagefind (the search index) failed: {pf.stdout[-2000:]}{pf.stderr[-2000:]}')
        shutil.rmtree(out/'notebooks', ignore_errors=True)
        (out/'notebooks').mkdir()
        for i in info: shutil.copy(NBS/f"{i['stem']}.ipynb", out/i['notebook'])
    size = sum(f.stat().st_size for f in out.rglob('*') if f.is_file())
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    n_decks = sum(n.startswith('slides/') for n in html)
    print(f'site: {len(html) - n_decks} page(s), {n_decks} slide deck(s) in {where} ({size/1e6:.1f} MB), '
          f'from the committed outputs (nothing run), in {time.perf_counter()-t0:.1f} s')
    for r in done:
        if r['error']: print(f"  {r['stem']}.ipynb: its committed outputs hold an error ({r['error']}): "
                             f"run `make outputs NB={r['stem']}`")
    sys.exit(1 if any(r['error'] for r in done) else 0)

if __name__ == '__main__': main()

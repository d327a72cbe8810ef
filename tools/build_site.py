"""Build the reading version of the series: `_site/`, one HTML page per notebook, plus slides, from the notebooks
as committed, with their committed outputs. Nothing is run (the outputs are written by `make outputs` and checked
fresh by `make test`, both with tools/run_notebooks.py), so a build takes seconds.

Usage: python tools/build_site.py [--out _site] [--workers 2] [--no-slides | --slides-only]

- Every `nbs/*.ipynb` becomes `_site/<name>.html` (`index.ipynb` becomes the home page `index.html`),
  in series order (file name), each with a contents sidebar and previous/next links.
- What is shown follows nbdev's processing (`nbdev.process.NBProcessor` and `nbdev.processors`):
  `#| hide` and `#| default_exp` cells are never shown (exercise answers and their tests live in hidden
  cells), directive lines are stripped, `show_doc` cells show only their output, exported cells show their
  source under an "Exported source" label, exported definitions without a `show_doc` get one (nbdev's
  `add_show_docs`; its output is made from the exported module, no notebook is run). Cells nbdev-test does
  not run (`#| eval: false`, a test flag) and that have no output are labelled so.
- A helper that is not the lesson's subject (cell metadata `jupyter.source_hidden`, collapsed in
  JupyterLab) has its source folded in a `<details>` element, its output shown.
- Slides: only the cells hand-picked with cell metadata `slideshow.slide_type` slide, subslide or fragment;
  cells marked skip (or `-`, `notes`) and unmarked cells are left out, test cells (`test_eq(...)`,
  `assert ...`) even when marked; a notebook with no marks gets a deck of its title only.
- Pages are rendered with nbconvert's `HTMLExporter` (template `tools/site_templates/site_page`, built
  on nbconvert's `lab` template) and slides with its `SlidesExporter` (`site_slides`, built on
  `reveal`). Nothing is loaded from the network: CSS is written to `_site/assets/`, MathJax (SVG
  output, no web fonts) and reveal.js come from `node_modules/` (`npm ci`).
- Links to `NN_name.ipynb#anchor` become `NN_name.html#anchor`. Every heading also answers to the
  lower-case anchor Quarto would give it (`#the-layout-of-mnist_sample`), so links written for the
  nbdev/Quarto site work here too.

Exit status 1 if a notebook's committed outputs hold an error (its page is still written, with a note).
"""
from __future__ import annotations
import argparse, copy, json, multiprocessing, os, re, shutil, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TEMPLATES = ROOT/'tools'/'site_templates'
NODE = ROOT/'node_modules'

# ---------------------------------------------------------------- the series

def series() -> list[Path]:
    "Notebooks in reading order: `index.ipynb` first, then the rest sorted by file name"
    nbs = sorted((p for p in NBS.glob('*.ipynb') if not p.name.startswith(('.', '_'))), key=lambda p: p.name)
    return sorted(nbs, key=lambda p: p.name != 'index.ipynb')

def page_name(nb: Path) -> str: return nb.stem + '.html'

def title_and_summary(nb) -> tuple[str|None, str|None]:
    "The notebook's `# Title` and `> summary` (nbdev's frontmatter convention)"
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        src = ''.join(c['source'])
        m = re.search(r'^#\s+(.+?)\s*$', src, re.M)
        if not m: continue
        s = re.search(r'^>\s*(.+?)\s*$', src[m.end():], re.M)
        return m.group(1).strip(), (s.group(1).strip() if s else None)
    return None, None

def strip_md(s: str) -> str:
    "Plain text of a one-line Markdown title: no backticks, no emphasis marks (underscores inside names stay)"
    return re.sub(r'(?<!\w)[*_]+|[*_]+(?!\w)', '', (s or '').replace('`', ''))

# ---------------------------------------------------------------- the committed notebook, with its docs

TEST_CALL = re.compile(r'^\s*(?:test_\w+\(|assert\b)', re.M)

def tst_flags() -> set[str]:
    from nbdev.config import get_config
    return set(str(get_config().get('tst_flags', 'notest')).split())

def _show_doc_output(src: str, module):
    "The output `show_doc(...)` gives, computed from the exported module (no notebook is run), or None"
    from nbdev.showdoc import show_doc
    try:
        res = eval(src.strip(), {**vars(module), 'show_doc': show_doc})
        md = res._repr_markdown_() if hasattr(res, '_repr_markdown_') else None
    except Exception: return None
    return {'output_type': 'display_data', 'metadata': {}, 'data': {'text/markdown': md}} if md else None

def prepare(path: Path):
    """The committed notebook as the page shows it before nbdev's display processors: exported definitions
    without a `show_doc` get one (nbdev's `add_show_docs`), its output made from the exported module; cells
    nbdev-test does not run (`#| eval: false`, a test flag) and with no output are labelled; error outputs noted"""
    import importlib, nbformat
    from fastcore.nbio import read_nb, nb2str
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    nb = read_nb(path)
    flags = tst_flags()
    for c in nb.cells:
        if c.cell_type != 'code': continue
        d = c.directives
        if (d.get('eval', '').lower() == 'false' or flags & d.keys()) and not c.get('outputs'):
            c.setdefault('metadata', {}).setdefault('tags', []).append('site-not-run')
    NBProcessor(nb=nb, procs=[add_show_docs], rm_directives=False).process()
    exp = next((str(c.directives['default_exp']).split()[0] if isinstance(c.directives['default_exp'], str) else c.directives['default_exp'][0] for c in nb.cells if c.cell_type == 'code' and 'default_exp' in c.directives), None)
    module = None
    if exp:
        try: module = importlib.import_module(f'mnist_basics.{exp}')
        except Exception as e: print(f'  {path.name}: cannot import mnist_basics.{exp} for its docs ({type(e).__name__}: {e})', flush=True)
    for c in [c for c in nb.cells if getattr(c, 'has_sd', False)]:
        del c['has_sd']
        out = _show_doc_output(c.source, module) if module else None
        if out: c['outputs'] = [out]
        else: c['source'] = ''  # nothing to show
    res = nbformat.reads(nb2str(nb), as_version=4)
    error = next((f"{o.get('ename')}: {o.get('evalue')}" for c in res.cells for o in c.get('outputs', []) if o.get('output_type') == 'error'), None)
    return res, error

# ---------------------------------------------------------------- what a reader sees

_re_showdoc = re.compile(r'^show_doc', re.M)
_re_attr_link = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'

def _tag(cell, tag):
    tags = cell.setdefault('metadata', {}).setdefault('tags', [])
    if tag not in tags: tags.append(tag)

def _quarto_links(md: str) -> str:
    "show_doc writes Quarto's `[text](url){attrs}`; plain Markdown has no attributes, so make it an HTML link"
    return _re_attr_link.sub(lambda m: f'<a class="site-ext-link" href="{m.group(2)}" target="_blank" rel="noopener">{m.group(1)}</a>', md)

def mark_cells(cell):
    "Decide, from nbdev's directives, what of a cell is shown (runs after the directives were parsed)"
    d = getattr(cell, 'directives_', {}) or {}
    if cell.cell_type == 'code':
        if 'default_exp' in d or d.get('include', '').lower() == 'false':
            del cell['source']; return
        if d.keys() & {'export', 'exports', 'exporti'}: _tag(cell, 'site-exported')
        if d.get('echo', '').lower() == 'false' or _re_showdoc.search(cell.source): _tag(cell, 'remove_input')
        if d.get('output', '').lower() == 'false': _tag(cell, 'remove_output')
        if cell.get('metadata', {}).get('jupyter', {}).get('source_hidden'):
            names = re.findall(r'^(?:async\s+)?(?:def|class)\s+(\w+)', cell.source, re.M)
            cell['metadata']['site_summary'] = f"Show the helper's code ({', '.join(names)})" if names else "Show the helper's code"
        for o in cell.get('outputs', []):
            data = o.get('data')
            if not data: continue
            if WIDGET_MIME in data:  # a static page has no kernel to drive a widget
                o['data'] = {'text/html': '<div class="site-widget-note">An interactive widget goes here: '
                                          'run this notebook in Jupyter to use it.</div>'}
            elif 'text/markdown' in data:
                md = data['text/markdown']
                data['text/markdown'] = _quarto_links(''.join(md) if isinstance(md, list) else md)
        if not cell.source.strip() and not cell.get('outputs'): del cell['source']

def for_reading(nb_json: str):
    "The executed notebook as the page shows it, processed with nbdev's processors plus `mark_cells`"
    import nbformat
    from fastcore.nbio import dict2nb, nb2str
    from nbdev.process import NBProcessor
    from nbdev.processors import strip_ansi, hide_, hide_line, filter_stream_, rm_header_dash, clean_magics
    nb = dict2nb(json.loads(nb_json))
    NBProcessor(nb=nb, procs=[hide_, mark_cells, hide_line, filter_stream_, strip_ansi, rm_header_dash, clean_magics],
                rm_directives=True).process()
    return nbformat.reads(nb2str(nb), as_version=4)

def has_math(nb) -> bool:
    md = '\n'.join(''.join(c['source']) for c in nb.cells if c.cell_type == 'markdown')
    md = re.sub(r'```.*?```|`[^`\n]*`', '', md, flags=re.S)
    return bool(re.search(r'\$\$.+?\$\$|(?<![\\$])\$[^\s$][^$\n]*?(?<!\s)\$(?!\d)|\\\(.+?\\\)|\\\[.+?\\\]', md, re.S))

# ---------------------------------------------------------------- slides

ON_SLIDES = ('slide', 'subslide', 'fragment')

def is_test(cell) -> bool:
    "A code cell that checks rather than teaches (`test_eq(...)`, `assert ...`)"
    return cell.cell_type == 'code' and bool(TEST_CALL.search(''.join(cell.get('source', ''))))

def marked_slides(nb, name: str = ''):
    """The deck: only the cells hand-picked with cell metadata `slideshow.slide_type` slide, subslide or fragment
    (cells marked `skip`, `-`, `notes` or not marked are left out; hidden cells are already gone). A test cell is
    never shown, even if marked (a warning names it). A notebook with no marks gets a deck of its title only."""
    keep = []
    for k, c in enumerate(nb.cells):
        kind = c.get('metadata', {}).get('slideshow', {}).get('slide_type')
        if kind not in ON_SLIDES or 'source' not in c: continue
        if is_test(c):
            first = next((l for l in c.source.splitlines() if TEST_CALL.match(l)), '')[:70]
            print(f'  warning: {name}: a test cell is marked for the slides, left out: {first!r}', flush=True); continue
        keep.append(c)
    if not keep:  # the title (and summary) only
        title = next((c for c in nb.cells if c.cell_type == 'markdown' and re.search(r'^#\s', c.source, re.M)), None)
        if title is not None:
            title = copy.deepcopy(title)
            title.source = '\n'.join(l for l in title.source.splitlines() if re.match(r'\s*(#\s|>)', l))
            title.setdefault('metadata', {})['slideshow'] = {'slide_type': 'slide'}
            keep = [title]
    if keep: keep[0].setdefault('metadata', {})['slideshow'] = {'slide_type': 'slide'}
    nb.cells = keep
    return nb

# ---------------------------------------------------------------- HTML

def _slug(text: str) -> str:
    "The identifier pandoc (and so Quarto/nbdev) gives a heading"
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower()).strip()
    s = re.sub(r'\s+', '-', s)
    return re.sub(r'^[^a-z]+', '', s) or 'section'

def _doc_url_prefixes():
    "The nbdev docs site's URL for our own modules, from `_modidx.py` (links there become local links)"
    try:
        from nbdev.config import get_config
        cfg = get_config()
        host, base = str(cfg.get('doc_host', '')).rstrip('/'), str(cfg.get('doc_baseurl', '')).strip('/')
        return [f'{host}/{base}/' if base else f'{host}/'] if host else []
    except Exception: return []

def postprocess(html: str, module_pages: dict[str, str], doc_prefixes: list[str], prefix: str = '',
                files: set | None = None) -> str:
    """Local links to notebooks become links to pages (`prefix` in front, for pages in a sub-folder);
    headings get Quarto-style anchors too; relative image files are added to `files` to be copied"""
    from bs4 import BeautifulSoup
    # embedded pictures (base64 data: URIs, most of a page's bytes) stand aside while the HTML is parsed: much faster
    data = []
    def aside(m): data.append(m.group(1)); return f'src="data:site-{len(data) - 1}"'
    html = re.sub(r'src="(data:[^"]{200,})"', aside, html)
    soup = BeautifulSoup(html, 'html.parser')
    for a in soup.find_all('a', href=True):
        href = a['href']
        for pre in doc_prefixes:  # nbdev's doc links for our own symbols: `data.html#sym` -> `00_data.html#sym`
            if href.startswith(pre):
                mod, _, frag = href[len(pre):].partition('#')
                page = module_pages.get(mod.removesuffix('.html'))
                if page:
                    a['href'] = href = prefix + page + ('#' + frag if frag else '')
                    a['data-site-doclink'] = '1'
        u = urlsplit(href)
        if not u.scheme and not u.netloc and u.path.endswith('.ipynb'):
            a['href'] = prefix + u.path.rsplit('/', 1)[-1][:-len('.ipynb')] + '.html' + (f'#{u.fragment}' if u.fragment else '')
    for img in soup.find_all(['img', 'source'], src=True):
        u = urlsplit(img['src'])
        if not u.scheme and not u.netloc and u.path and not u.path.startswith('/'):
            if files is not None: files.add(u.path)
            img['src'] = prefix + img['src']
    ids = {t['id'] for t in soup.find_all(id=True)}
    for h in soup.find_all(re.compile(r'^h[1-6]$'), id=True):
        alias = _slug(h.get_text().rstrip('¶'))
        if alias not in ids:
            ids.add(alias)
            h.insert(0, soup.new_tag('span', attrs={'id': alias, 'class': 'site-anchor'}))
    return re.sub(r'src="data:site-(\d+)"', lambda m: f'src="{data[int(m.group(1))]}"', str(soup))

def check_anchor_links(docs: dict[str, str], pages: dict[str, str]) -> dict[str, str]:
    "Unlink doc links (in `docs`) whose target anchor is not on the target page (a symbol that page does not document)"
    from bs4 import BeautifulSoup
    ids = {n: set(re.findall(r'\sid="([^"]*)"', h)) for n, h in pages.items()}
    for n, html in docs.items():
        if 'data-site-doclink' not in html: continue
        soup = BeautifulSoup(html, 'html.parser')
        for a in soup.find_all('a', attrs={'data-site-doclink': True}):
            page, _, frag = a['href'].removeprefix('../').partition('#')
            if page not in ids or (frag and frag not in ids[page]): a.unwrap()
            else: del a['data-site-doclink']
        docs[n] = str(soup)
    return docs

def lab_css() -> str:
    "JupyterLab's notebook CSS as nbconvert's `lab` template inlines it, to be written once to assets/"
    from jupyter_core.paths import jupyter_path
    for d in jupyter_path('nbconvert', 'templates', 'lab', 'static'):
        d = Path(d)
        if (d/'index.css').exists(): return (d/'index.css').read_text() + '\n' + (d/'theme-light.css').read_text()
    raise FileNotFoundError("nbconvert's lab template CSS")

def copy_assets(out: Path, slides: bool):
    assets = out/'assets'
    assets.mkdir(parents=True, exist_ok=True)
    (assets/'jupyterlab.css').write_text(lab_css())
    shutil.copy(TEMPLATES/'site.css', assets/'site.css')
    mj = NODE/'mathjax'/'es5'/'tex-svg-full.js'
    if not mj.exists(): sys.exit(f'{mj} is missing: run `npm ci` (make site does) to install the local MathJax and reveal.js')
    shutil.copy(mj, assets/'mathjax-tex-svg-full.js')
    if slides:
        rv = NODE/'reveal.js'
        if not (rv/'dist'/'reveal.js').exists(): sys.exit(f'{rv} is missing: run `npm ci` (make slides does)')
        dest = out/'slides'/'reveal.js'
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(rv/'dist', dest/'dist', ignore=shutil.ignore_patterns('*.map', '*.esm.js'))
        shutil.copytree(rv/'plugin'/'notes', dest/'plugin'/'notes', ignore=shutil.ignore_patterns('*.esm.js'))
        for f in ('LICENSE',): shutil.copy(rv/f, dest/f)

def exporter(kind: str):
    from traitlets.config import Config
    from nbconvert import HTMLExporter, SlidesExporter
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {'remove_cell'}
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    c.TemplateExporter.extra_template_basedirs = [str(TEMPLATES)]
    c.TemplateExporter.extra_template_paths = [str(TEMPLATES)]  # for the shared site_cells.j2
    if kind == 'page': return HTMLExporter(config=c, template_name='site_page')
    c.SlidesExporter.reveal_url_prefix = 'reveal.js'
    c.SlidesExporter.reveal_theme = 'white'
    c.SlidesExporter.reveal_scroll = True
    return SlidesExporter(config=c, template_name='site_slides')

_exporters = {}
def render(i: dict, ctx: dict) -> dict:
    """Page and slides HTML for one notebook (runs in a worker), from the notebook as committed. `i` is its entry
    in the contents (a generated contents page when there is no index.ipynb), `ctx` what every page shares"""
    import nbformat
    info, k = ctx['info'], ctx['info'].index(i)
    error = None
    if i.get('generated'):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
            '# Contents\n\n' + '\n'.join(f'1. [{j["title"]}]({j["href"]}){": " + j["summary"] if j["summary"] else ""}' for j in info[1:]))])
    else:
        prepared, error = prepare(NBS/f"{i['stem']}.ipynb")
        nb = for_reading(nbformat.writes(prepared))
    site = dict(pages=info, current=i['stem'], prev=info[k-1] if k else None, next=info[k+1] if k+1 < len(info) else None,
                title=i['title'], summary=i['summary'], has_math=has_math(nb), error=error,
                slides=ctx['slides'] and i.get('slides'), notebook=i.get('notebook'), home=info[0])
    files, res = set(), dict(stem=i['stem'], error=error)
    for kind in ['page'] * ctx['pages'] + ['slides'] * bool(ctx['slides'] and i.get('slides')):
        if kind not in _exporters: _exporters[kind] = exporter(kind)
        doc = nb if kind == 'page' else marked_slides(copy.deepcopy(nb), f"{i['stem']}.ipynb")
        body, _ = _exporters[kind].from_notebook_node(doc, resources={'site': site, 'metadata': {'name': i['title']}})
        if kind == 'slides':  # a link to a heading of this notebook: the deck may not have that heading, the page has
            body = re.sub(r'href="#(?!/)', f'href="../{i["stem"]}.html#', body)
        res[kind] = postprocess(body, ctx['module_pages'], ctx['doc_prefixes'], '' if kind == 'page' else '../', files)
    res['files'] = files
    return res

# ---------------------------------------------------------------- main

def contents() -> list[dict]:
    "The series as the contents lists it, from the notebooks as they are in nbs/"
    info = []
    for p in series():
        raw = json.loads(p.read_text(encoding='utf-8'))
        title, summary = title_and_summary(raw)
        exp = next((m.group(1) for c in raw['cells'] if c['cell_type'] == 'code'
                    for m in [re.search(r'^\s*#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)] if m), None)
        info.append(dict(stem=p.stem, href=page_name(p), title=strip_md(title or p.stem), summary=strip_md(summary or ''),
                         module=exp, slides=f'slides/{p.stem}.slides.html', notebook=f'notebooks/{p.name}'))
    if not any(i['stem'] == 'index' for i in info):  # no home page yet: a generated contents page stands in
        info.insert(0, dict(stem='index', href='index.html', title='Contents', summary='', module=None,
                            slides=None, notebook=None, generated=True))
    return info

def main(argv=None):
    global NBS
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (default _site)')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('SITE_WORKERS', 2)), help='pages rendered at once')
    ap.add_argument('--nbs', default=str(NBS), help='the notebooks folder (default nbs/)')
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--no-slides', action='store_true', help='pages only')
    g.add_argument('--slides-only', action='store_true', help='slides only (into <out>/slides)')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    os.chdir(ROOT)
    NBS = Path(args.nbs).resolve()
    out = Path(args.out).resolve()
    if not series(): sys.exit('no notebooks in nbs/')
    info = contents()
    ctx = dict(info=info, pages=not args.slides_only, slides=not args.no_slides,
               module_pages={i['module']: i['href'] for i in info if i['module']}, doc_prefixes=_doc_url_prefixes())
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, ctx['slides'])
    # the heavy imports once, here, so that the forked workers share them
    import nbconvert, nbdev.showdoc, torch  # noqa: F401
    with ProcessPoolExecutor(max_workers=max(1, args.workers), mp_context=multiprocessing.get_context('fork')) as pool:
        done = {r['stem']: r for r in pool.map(render, info, [ctx]*len(info))}
    by_stem = {i['stem']: i for i in info}
    pages = {by_stem[s]['href']: r['page'] for s, r in done.items() if 'page' in r}
    decks = {by_stem[s]['slides']: r['slides'] for s, r in done.items() if 'slides' in r}
    for f in sorted(set().union(*(r['files'] for r in done.values()))):  # pictures shown from files beside the notebooks
        src = (NBS/f).resolve()
        if src.is_file() and src.is_relative_to(NBS):
            (out/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy(src, out/f)
    if pages:
        for name, html in check_anchor_links(pages, pages).items(): (out/name).write_text(html, encoding='utf-8')
        for f in out.glob('*.html'):
            if f.name not in pages: f.unlink()
        shutil.rmtree(out/'notebooks', ignore_errors=True); (out/'notebooks').mkdir()
        for i in info:
            if i.get('notebook'): shutil.copy(NBS/f"{i['stem']}.ipynb", out/i['notebook'])
    if decks:
        targets = pages or {f.name: f.read_text(encoding='utf-8') for f in out.glob('*.html')}
        (out/'slides').mkdir(exist_ok=True)
        for name, html in check_anchor_links(decks, targets).items(): (out/name).write_text(html, encoding='utf-8')
        for f in (out/'slides').glob('*.slides.html'):
            if f'slides/{f.name}' not in decks: f.unlink()
    size = sum(f.stat().st_size for f in out.rglob('*') if f.is_file() and 'screenshots' not in f.parts)
    errors = [(s, r['error']) for s, r in done.items() if r.get('error')]
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f'site: {len(pages)} page(s), {len(decks)} slide deck(s) in {where} ({size/1e6:.1f} MB), '
          f'from the committed outputs (nothing run), in {time.perf_counter()-t0:.1f} s')
    if errors:
        for stem, err in errors: print(f'  {stem}.ipynb: its committed outputs hold an error ({err}): run `make outputs NB={stem}`')
        sys.exit(1)

if __name__ == '__main__': main()

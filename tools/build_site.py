"""Build the reading version of the series: `_site/`, one executed HTML page per notebook, plus slides.

Usage: python tools/build_site.py [--out _site] [--workers 2] [--flags slow] [--no-cache] [--no-slides | --slides-only]

- Every `nbs/*.ipynb` becomes `_site/<name>.html` (`index.ipynb` becomes the home page `index.html`),
  in series order (file name), each with a contents sidebar and previous/next links.
- Notebooks are executed with nbclient (working folder `nbs/`, at most `--workers` at a time). A run is
  cached in `_proc/site_cache/`, keyed on the notebook, the package sources and this script, so a
  rebuild re-runs only what changed.
- What is shown follows nbdev's processing (`nbdev.process.NBProcessor` and `nbdev.processors`):
  `#| hide` and `#| default_exp` cells are dropped, directive lines are stripped, `show_doc` cells show
  only their output, exported cells show their source under an "Exported source" label, exported
  definitions without a `show_doc` get one (nbdev's `add_show_docs`). Cells marked `#| eval: false` or
  with a test flag that is not in `--flags` are shown but not run, as in `nbdev-test`.
- Pages are rendered with nbconvert's `HTMLExporter` (template `tools/site_templates/site_page`, built
  on nbconvert's `lab` template) and slides with its `SlidesExporter` (`site_slides`, built on
  `reveal`). Nothing is loaded from the network: CSS is written to `_site/assets/`, MathJax (SVG
  output, no web fonts) and reveal.js come from `node_modules/` (`npm ci`).
- Links to `NN_name.ipynb#anchor` become `NN_name.html#anchor`. Every heading also answers to the
  lower-case anchor Quarto would give it (`#the-layout-of-mnist_sample`), so links written for the
  nbdev/Quarto site work here too.

Exit status 1 if any notebook failed to run (its page is still written, with the error shown).
"""
from __future__ import annotations
import argparse, copy, hashlib, json, multiprocessing, os, re, shutil, sys, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
TEMPLATES = ROOT/'tools'/'site_templates'
CACHE = ROOT/'_proc'/'site_cache'
NODE = ROOT/'node_modules'
BUILD_VERSION = '1'  # bump when a change here alters how notebooks are run, to invalidate every cached run
SLIDE_TYPES = ('slide', 'subslide', 'fragment', 'skip', 'notes', '-')

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

# ---------------------------------------------------------------- before running

def tst_flags() -> set[str]:
    from nbdev.config import get_config
    return set(str(get_config().get('tst_flags', 'notest')).split())

def prepare(path: Path, run_flags: set[str]):
    "The notebook as it will be run: not-run cells tagged, nbdev's `add_show_docs` applied"
    import nbformat
    from fastcore.nbio import read_nb, nb2str
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    nb = read_nb(path)
    skip_flags = tst_flags() - run_flags
    for c in nb.cells:
        if c.cell_type != 'code': continue
        d = c.directives
        if d.get('eval', '').lower() == 'false' or skip_flags & d.keys():
            c.setdefault('metadata', {}).setdefault('tags', []).append('skip-execution')
    NBProcessor(nb=nb, procs=[add_show_docs], rm_directives=False).process()
    added = [c for c in nb.cells if getattr(c, 'has_sd', False)]
    for c in added:
        del c['has_sd']
        c.setdefault('metadata', {}).setdefault('tags', []).append('site-added-show-doc')
    res = nbformat.reads(nb2str(nb), as_version=4)
    n = 0
    for c in res.cells:  # ids that do not change between builds, so the cache key does not either
        if 'site-added-show-doc' in c.metadata.get('tags', []): c['id'] = f'site-show-doc-{n}'; n += 1
    if added:  # nbdev runs `from nbdev.showdoc import show_doc` first for the same reason
        c = nbformat.v4.new_code_cell('#| hide\nfrom nbdev.showdoc import show_doc')
        c['id'] = 'site-import-show-doc'
        res.cells.insert(0, c)
    return res

def sources_digest() -> str:
    "Everything besides the notebook itself that can change what a notebook prints"
    h = hashlib.sha256(BUILD_VERSION.encode())
    for f in sorted(f for f in (ROOT/'mnist_basics').rglob('*.py') if f.name != '_modidx.py') + [ROOT/'pyproject.toml']:
        h.update(f.relative_to(ROOT).as_posix().encode()); h.update(f.read_bytes())
    return h.hexdigest()

# ---------------------------------------------------------------- running (in worker processes)

def run_notebook(stem: str, nb_json: str, timeout: int, cwd: str):
    "Execute one notebook with its working folder set to `cwd` (nbs/); return (stem, executed json, seconds, error)"
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.reads(nb_json, as_version=4)
    os.environ.pop('IN_TEST', None)
    t0 = time.perf_counter()
    import tempfile
    from traitlets.config import Config
    error = None
    # IPC sockets in a private folder: no TCP ports that a kernel starting at the same moment could take
    with tempfile.TemporaryDirectory(prefix='site-kernel-') as sock:
        cfg = Config({'KernelManager': {'transport': 'ipc', 'ip': os.path.join(sock, 'k')}})
        client = NotebookClient(nb, config=cfg, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': cwd}},
                                skip_cells_with_tag='skip-execution', allow_errors=False, record_timing=False)
        try: client.execute()
        except CellExecutionError as e:
            error = re.sub(r'\x1b\[[0-9;]*m', '', str(e)).strip().splitlines()[-1] if str(e).strip() else repr(e)
        except Exception as e: error = f'{type(e).__name__}: {e}'
    return stem, nbformat.writes(nb), time.perf_counter() - t0, error

def execute_all(jobs: dict, workers: int, timeout: int, use_cache: bool, on_done=None) -> dict:
    """jobs: stem -> prepared nb. Returns stem -> (executed nb json, seconds, error, cached);
    `on_done(stem, result)` is called as each result arrives (cached ones first)"""
    import nbformat
    CACHE.mkdir(parents=True, exist_ok=True)
    digest = sources_digest()
    results, todo = {}, {}
    for stem, nb in jobs.items():
        text = nbformat.writes(nb)
        key = hashlib.sha256((digest + text).encode()).hexdigest()[:20]
        f = CACHE/f'{stem}.{key}.ipynb'
        if use_cache and f.exists():
            meta = json.loads((CACHE/f'{stem}.{key}.json').read_text())
            results[stem] = (f.read_text(encoding='utf-8'), meta['seconds'], None, True)
            if on_done: on_done(stem, results[stem])
        else: todo[stem] = (text, key)
    # longest first, from the last timing we have, so two workers finish together
    last = {}
    for m in CACHE.glob('*.json'):
        try: last[m.name.split('.')[0]] = json.loads(m.read_text())['seconds']
        except (ValueError, KeyError): pass
    order = sorted(todo, key=lambda s: -last.get(s, 60))
    if order: print(f'running {len(order)} notebook(s) with {min(workers, len(order))} worker(s): {", ".join(order)}', flush=True)
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(order) or 1)),
                             mp_context=multiprocessing.get_context('spawn')) as pool:
        futs = [pool.submit(run_notebook, s, todo[s][0], timeout, str(NBS)) for s in order]
        for fut in as_completed(futs):
            stem, text, secs, error = fut.result()
            key = todo[stem][1]
            print(f"  {'FAILED' if error else 'ran'} {stem}.ipynb in {secs:.1f} s{': ' + error if error else ''}", flush=True)
            if not error:
                for old in CACHE.glob(f'{stem}.*'): old.unlink()
                (CACHE/f'{stem}.{key}.ipynb').write_text(text, encoding='utf-8')
                (CACHE/f'{stem}.{key}.json').write_text(json.dumps({'seconds': round(secs, 2)}))
            results[stem] = (text, secs, error, False)
            if on_done: on_done(stem, results[stem])
    return results

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
        if 'skip-execution' in cell.get('metadata', {}).get('tags', []): _tag(cell, 'site-not-run')
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

def _est_lines(cell) -> int:
    "Rough height of a cell on a slide, in lines"
    tags = cell.get('metadata', {}).get('tags', [])
    n = 0 if 'remove_input' in tags else len(''.join(cell.get('source', '')).splitlines()) + 1
    for o in ([] if 'remove_output' in tags else cell.get('outputs', [])):
        data = o.get('data', {})
        if any(k.startswith('image/') for k in data): n += 14
        elif 'text/html' in data: n += min(16, len(''.join(data['text/html']).splitlines()) // 2 + 2)
        elif 'text/markdown' in data: n += len(''.join(data['text/markdown']).splitlines())
        else: n += min(14, len(''.join(o.get('text', data.get('text/plain', ''))).splitlines()))
    return n

def default_slides(nb, budget: int = 18):
    """Give a notebook without any `slideshow` metadata a usable deck: `#`/`##` headings start slides,
    `###` headings sub-slides; after that, cells join the current sub-slide while they fit (code then
    appears as a fragment, after the prose that leads to it) and start a new sub-slide when they don't"""
    if any('slideshow' in c.get('metadata', {}) for c in nb.cells): return nb
    used, titled = budget, False
    for c in nb.cells:
        src = ''.join(c.get('source', ''))
        level = len(m.group(1)) if c.cell_type == 'markdown' and (m := re.match(r'\s*(#{1,6})\s', src)) else 0
        size = _est_lines(c)
        titled = titled or level == 1
        if not titled: kind = 'skip'  # the imports above the title make a poor first slide
        elif level in (1, 2): kind, used = 'slide', size
        elif level >= 3: kind, used = 'subslide', size
        elif used + size > budget: kind, used = 'subslide', size
        else:
            kind = 'fragment' if c.cell_type == 'code' and 'remove_input' not in c.get('metadata', {}).get('tags', []) else '-'
            used += size
        c.setdefault('metadata', {})['slideshow'] = {'slide_type': kind}
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
    return str(soup)

def check_anchor_links(docs: dict[str, str], pages: dict[str, str]) -> dict[str, str]:
    "Unlink doc links (in `docs`) whose target anchor is not on the target page (a symbol that page does not document)"
    from bs4 import BeautifulSoup
    ids = {n: {t['id'] for t in BeautifulSoup(h, 'html.parser').find_all(id=True)} for n, h in pages.items()}
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
def render(i: dict, text: str|None, error: str|None, ctx: dict) -> dict:
    """Page and slides HTML for one notebook (runs in a worker). `i` is its entry in the contents,
    `text` its executed JSON (None for the generated contents page), `ctx` what every page shares"""
    import nbformat
    info, k = ctx['info'], ctx['info'].index(i)
    if text is None:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
            '# Contents\n\n' + '\n'.join(f'1. [{j["title"]}]({j["href"]}){": " + j["summary"] if j["summary"] else ""}' for j in info[1:]))])
    else: nb = for_reading(text)
    site = dict(pages=info, current=i['stem'], prev=info[k-1] if k else None, next=info[k+1] if k+1 < len(info) else None,
                title=i['title'], summary=i['summary'], has_math=has_math(nb), error=error,
                slides=ctx['slides'] and i.get('slides'), notebook=i.get('notebook'), home=info[0])
    files, res = set(), dict(stem=i['stem'])
    for kind in ['page'] * ctx['pages'] + ['slides'] * bool(ctx['slides'] and i.get('slides')):
        if kind not in _exporters: _exporters[kind] = exporter(kind)
        doc = nb if kind == 'page' else default_slides(copy.deepcopy(nb))
        body, _ = _exporters[kind].from_notebook_node(doc, resources={'site': site, 'metadata': {'name': i['title']}})
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
    global NBS, CACHE
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (default _site)')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('SITE_WORKERS', 2)), help='notebooks run (and pages rendered) at once')
    ap.add_argument('--timeout', type=int, default=600, help='seconds allowed for one cell')
    ap.add_argument('--flags', default=os.environ.get('SITE_FLAGS', ''), help='test flags whose cells are run too (e.g. "slow")')
    ap.add_argument('--no-cache', action='store_true', help='run every notebook even when a cached run matches')
    ap.add_argument('--nbs', default=str(NBS), help='the notebooks folder (default nbs/)')
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--no-slides', action='store_true', help='pages only')
    g.add_argument('--slides-only', action='store_true', help='slides only (into <out>/slides)')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    os.chdir(ROOT)
    if Path(args.nbs).resolve() != NBS: NBS, CACHE = Path(args.nbs).resolve(), Path(args.out).resolve().parent/'_site_cache'
    out = Path(args.out).resolve()
    if not series(): sys.exit('no notebooks in nbs/')
    info = contents()
    ctx = dict(info=info, pages=not args.slides_only, slides=not args.no_slides,
               module_pages={i['module']: i['href'] for i in info if i['module']}, doc_prefixes=_doc_url_prefixes())
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, ctx['slides'])

    # Pages are rendered in forked workers as soon as their notebook has run, while others still run.
    renders = {}
    render_pool = ProcessPoolExecutor(max_workers=max(1, args.workers), mp_context=multiprocessing.get_context('fork'))
    list(render_pool.map(abs, range(max(1, args.workers))))  # start the workers now, before any thread exists
    for i in info:
        if i.get('generated'): renders[i['stem']] = render_pool.submit(render, i, None, None, ctx)
    by_stem = {i['stem']: i for i in info}
    def on_done(stem, result):
        text, _, error, _ = result
        renders[stem] = render_pool.submit(render, by_stem[stem], text, error, ctx)

    jobs = {p.stem: prepare(p, set(args.flags.split())) for p in series()}
    results = execute_all(jobs, args.workers, args.timeout, not args.no_cache, on_done)
    t_exec = time.perf_counter() - t0
    done = {stem: f.result() for stem, f in renders.items()}
    render_pool.shutdown()

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
    ran = sum(not r[3] for r in results.values())
    failed = [(s, r[2]) for s, r in results.items() if r[2]]
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f'site: {len(pages)} page(s), {len(decks)} slide deck(s) in {where} ({size/1e6:.1f} MB); '
          f'{ran} notebook(s) run, {len(results)-ran} from cache; {t_exec:.0f} s running, {time.perf_counter()-t0:.0f} s in all')
    if failed:
        for stem, err in failed: print(f'  FAILED {stem}.ipynb: {err}')
        sys.exit(1)

if __name__ == '__main__': main()

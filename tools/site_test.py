"""Check the built site (`_site/`) in a real browser. Usage: python tools/site_test.py [--site _site] [--no-file]

1. Links, read from the HTML: every local href/src points at a file in the site, every `#anchor` exists
   on its target page, and nothing (script, style, image, frame, font) comes from another host.
2. Headless Chromium (Debian's `/usr/bin/chromium`, or $CHROMIUM) driven by Playwright opens every page
   and every slide deck from a local server (python's http.server on 127.0.0.1, a free port): the page
   must load with no console error, no uncaught exception, no failed or refused request and no request
   to another host; every image must have rendered (`naturalWidth > 0`); MathJax, where a page uses it,
   must typeset without errors; a deck must start reveal.js. A full-page screenshot of each page (and
   the first slide of each deck) goes to `_site/screenshots/`.
3. Each page is opened once more from `file://`, the way a learner opens a downloaded copy, with the
   same checks on console errors, failed requests and images.
4. What a reader must (not) see, read from the HTML against its notebook in nbs/: no line of a `#| hide`
   cell (exercise answers and their checks live there) on the page or the deck; the code of every shown
   helper whose cell metadata has `jupyter.source_hidden` folded inside a `<details>`; a deck shows only
   cells marked slide/subslide/fragment (no line of a skipped or unmarked cell), never a test
   (`test_eq(...)`, `assert ...`), and a notebook without marks gets its title only.

Prints one line per page and closes with 'site: N passed, N failed'; exit status 1 if any failed.
"""
from __future__ import annotations
import argparse, functools, http.server, os, re, shutil, sys, tempfile, threading, time
from pathlib import Path
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
RESOURCE_TAGS = {'script': 'src', 'link': 'href', 'img': 'src', 'source': 'src', 'iframe': 'src', 'video': 'src', 'audio': 'src'}

def site_pages(site: Path) -> list[Path]:
    "Every page and slide deck of the site (not the files inside reveal.js)"
    return sorted(site.glob('*.html')) + sorted((site/'slides').glob('*.slides.html'))

# ---------------------------------------------------------------- links, from the files

_ids_cache: dict[Path, set] = {}
def ids_of(page: Path) -> set:
    if page not in _ids_cache:
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')
        _ids_cache[page] = {t['id'] for t in soup.find_all(id=True)} | {t['name'] for t in soup.find_all('a', attrs={'name': True})}
    return _ids_cache[page]

def check_links(page: Path, site: Path) -> list[str]:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')
    problems = []
    for tag, attr in RESOURCE_TAGS.items():
        for el in soup.find_all(tag, attrs={attr: True}):
            u = urlsplit(el[attr])
            if u.scheme in ('http', 'https') or el[attr].startswith('//'):
                problems.append(f'<{tag}> loads from another host: {el[attr][:100]}')
            elif not u.scheme and u.path:
                target = (page.parent/unquote(u.path)).resolve()
                if not target.is_file(): problems.append(f'<{tag}> {attr}="{el[attr][:100]}": no such file')
    for style in soup.find_all('style'):
        for url in re.findall(r'url\(\s*[\'"]?(https?:)?//', style.get_text()):
            problems.append('a <style> loads from another host')
        if re.search(r'@import\s+(url\()?\s*[\'"]?(https?:)?//', style.get_text()): problems.append('a <style> @imports from another host')
    for a in soup.find_all('a', href=True):
        href = a['href']
        u = urlsplit(href)
        if u.scheme or href.startswith('//'): continue  # a link out: the reader may follow it, nothing is fetched
        if u.fragment.startswith('/'): continue          # reveal.js's own #/slide routes
        target = (page.parent/unquote(u.path)).resolve() if u.path else page
        if not target.is_file(): problems.append(f'broken link "{href}": no such page'); continue
        if u.fragment and target.suffix == '.html' and not {u.fragment, unquote(u.fragment)} & ids_of(target):
            problems.append(f'broken link "{href}": no anchor #{u.fragment} on {target.name}')
    return problems

# ---------------------------------------------------------------- what is shown, against the notebook

SLIDE_KINDS = ('slide', 'subslide', 'fragment')
TEST_CALL = re.compile(r'^\s*(?:test_\w+\(|assert\b)', re.M)
_ws = lambda t: re.sub(r'\s+', ' ', t).strip()

def _cells(nb_path: Path) -> list[dict]:
    "The notebook's cells with what the checks need: kind, source lines that matter, hidden, folded, slide mark, test"
    import json
    out = []
    for c in json.loads(nb_path.read_text(encoding='utf-8'))['cells']:
        src = ''.join(c.get('source', ''))
        meta = c.get('metadata', {})
        out.append(dict(type=c['cell_type'], src=src,
                        lines=[_ws(l) for l in src.splitlines() if len(l.strip()) >= 20 and not l.lstrip().startswith(('#|', 'import ', 'from '))],
                        hidden=bool(re.search(r'^\s*#\|\s*(hide|default_exp)\b', src, re.M)),
                        folded=bool(meta.get('jupyter', {}).get('source_hidden')),
                        slide=meta.get('slideshow', {}).get('slide_type'),
                        test=c['cell_type'] == 'code' and bool(TEST_CALL.search(src))))
    return out

def check_content(page: Path, nb_path: Path, is_deck: bool) -> list[str]:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')
    blocks = soup.select('.jp-InputArea-editor')
    codes = [_ws(b.get_text()) for b in blocks]
    page_lines = {_ws(l) for b in blocks for l in b.get_text().splitlines()}
    cells = _cells(nb_path)
    problems = []
    def shown(line): return line in page_lines
    # lines unique to the cells that must not be shown (a line that a shown cell also has, or holds, proves nothing)
    def unique_lines(bad, good):
        keep = [_ws(l) for c in good for l in c['src'].splitlines()]
        return [(i, l) for i, c in bad for l in c['lines'] if not any(l in k for k in keep)]
    visible = [c for c in cells if not c['hidden']]
    for i, l in unique_lines([(i, c) for i, c in enumerate(cells) if c['hidden'] and c['type'] == 'code'], visible):
        if shown(l): problems.append(f'a line of hidden cell {i} is shown: {l[:80]!r}'); break
    if not is_deck:
        for i, c in enumerate(cells):
            if c['type'] != 'code' or c['hidden'] or not c['folded'] or not c['lines']: continue
            b = next((b for b, t in zip(blocks, codes) if c['lines'][0] in t), None)
            if b is None: problems.append(f'helper cell {i} (source_hidden) is not on the page'); continue
            if b.find_parent('details') is None: problems.append(f'helper cell {i} (source_hidden) is not folded in <details>: {c["lines"][0][:60]!r}')
        return problems
    marked = [c for c in visible if c['slide'] in SLIDE_KINDS and not c['test']]
    for code in codes:
        if TEST_CALL.search(code.replace('; ', '\n')) or re.search(r'(?:^|\s)(?:test_(?:eq|close|ne|fail|is|stdout|warns|shuffled)\(|assert\s)', code):
            problems.append(f'a test is on the slides: {code[:80]!r}'); break
    left_out = [(i, c) for i, c in enumerate(cells) if not c['hidden'] and (c['slide'] not in SLIDE_KINDS or c['test'])]
    for i, l in unique_lines(left_out, marked):
        if shown(l): problems.append(f'cell {i}, not marked for the slides, is on them: {l[:80]!r}'); break
    n = len(soup.select('.jp-Cell'))
    if not marked and n > 1: problems.append(f'no cell is marked for the slides, so the deck should be the title only, but it has {n} cells')
    if marked and n > len(marked): problems.append(f'the deck has {n} cells but only {len(marked)} are marked for the slides')
    return problems

# ---------------------------------------------------------------- the browser

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

def serve(site: Path):
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd

def chromium_path() -> str:
    exe = os.environ.get('CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(exe).exists(): sys.exit('Chromium not found: `make site-test` installs Debian\'s chromium, or set CHROMIUM=/path/to/chromium')
    return exe

WAIT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  if (window.deck) { for (let i = 0; i < 100 && !deck.isReady(); i++) await new Promise(r => setTimeout(r, 50)); }
  await Promise.all(Array.from(document.images).map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
  return true;
}"""
PROBE_JS = """() => ({
  images: Array.from(document.images).map(i => ({src: i.currentSrc.slice(0, 60), ok: i.complete && i.naturalWidth > 0})),
  mathErrors: document.querySelectorAll('mjx-merror, .MathJax_Error').length,
  mathUsed: !!window.MathJax,
  deckReady: window.deck ? deck.isReady() : null,
  slides: window.deck ? deck.getTotalSlides() : null,
  height: document.documentElement.scrollHeight,
})"""

def open_page(ctx, url: str, allowed, problems: list, screenshot: Path|None = None, is_deck=False) -> dict:
    page = ctx.new_page()
    page.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text[:200]}'))
    page.on('pageerror', lambda e: problems.append(f'uncaught exception: {str(e)[:200]}'))
    page.on('requestfailed', lambda r: allowed(r.url) and problems.append(f'request failed: {r.url[:120]} ({r.failure})'))
    page.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url[:120]}'))
    try:
        page.goto(url, wait_until='load', timeout=60_000)
        page.evaluate(WAIT_JS)
        page.wait_for_timeout(150)
        info = page.evaluate(PROBE_JS)
        bad = [i['src'] for i in info['images'] if not i['ok']]
        if bad: problems.append(f'{len(bad)} of {len(info["images"])} image(s) did not render: {bad[:3]}')
        if info['mathErrors']: problems.append(f'{info["mathErrors"]} MathJax error(s)')
        if is_deck and not info['deckReady']: problems.append('reveal.js did not start')
        if is_deck and not info['slides']: problems.append('the deck has no slides')
        if screenshot:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=not is_deck)
        return info
    except Exception as e:
        problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
        return {}
    finally: page.close()

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--site', default=str(ROOT/'_site'))
    ap.add_argument('--no-file', action='store_true', help='skip the second pass over file:// URLs')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='the notebooks the pages were made from (default nbs/)')
    args = ap.parse_args(argv)
    site = Path(args.site).resolve()
    if not (site/'index.html').is_file(): sys.exit(f'{site}/index.html not found: build the site first (make site)')
    from playwright.sync_api import sync_playwright
    t0 = time.perf_counter()
    pages = site_pages(site)
    shots = site/'screenshots'
    shutil.rmtree(shots, ignore_errors=True)
    httpd = serve(site)
    host = f'127.0.0.1:{httpd.server_address[1]}'
    external = []
    def route(r):
        u = urlsplit(r.request.url)
        if u.scheme in ('data', 'blob', 'about') or (u.scheme == 'http' and u.netloc == host) or u.scheme == 'file':
            return r.continue_()
        external.append(r.request.url); r.abort('blockedbyclient')
    results = []
    with tempfile.TemporaryDirectory(prefix='site-test-chromium-') as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True, args=FLAGS,
                                                    viewport={'width': 1280, 'height': 900}, service_workers='block')
        ctx.route('**/*', route)
        for p in pages:
            rel = p.relative_to(site).as_posix()
            is_deck = rel.startswith('slides/')
            problems = check_links(p, site)
            nb = Path(args.nbs)/(p.name.removesuffix('.slides.html').removesuffix('.html') + '.ipynb')
            if nb.is_file(): problems += check_content(p, nb, is_deck)
            n_ext = len(external)
            shot = shots/(('slides-' + p.name.removesuffix('.slides.html')) if is_deck else p.stem)
            info = open_page(ctx, f'http://{host}/{rel}', lambda u: urlsplit(u).netloc == host, problems,
                             shot.with_suffix('.png'), is_deck)
            if not args.no_file:
                fp = []
                open_page(ctx, p.as_uri(), lambda u: u.startswith('file:'), fp, None, is_deck)
                problems += [f'(file://) {x}' for x in fp]
            problems += [f'request to another host (blocked): {u[:120]}' for u in external[n_ext:]]
            problems = list(dict.fromkeys(problems))
            what = (f"{info.get('slides')} slides" if is_deck else f"{len(info.get('images', []))} images, {info.get('height', 0)} px") if info else ''
            results.append((rel, problems))
            print(f"{'PASS' if not problems else 'FAIL'} {rel} ({what})", flush=True)
            for x in problems: print(f'     {x}', flush=True)
        ctx.close()
    httpd.shutdown()
    nfail = sum(bool(pr) for _, pr in results)
    print(f'screenshots in {shots.relative_to(ROOT) if shots.is_relative_to(ROOT) else shots}; {time.perf_counter()-t0:.0f} s')
    print(f'site: {len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

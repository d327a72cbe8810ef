"""Check the built site (`_site/`) in headless Chromium: `make site-test`. Usage: python tools/site_test.py [--no-file]

Every page and deck is opened from a local server and from `file://`: no console error, uncaught exception, failed
request or request to another host; images rendered; MathJax without errors; reveal.js started. Every local link leads
to a page and an anchor on it; no line of a `#| hide` cell is shown; a deck shows only the cells marked for the slides,
never a test. Screenshots go to `_site/screenshots/`. Ends with 'site: N passed, N failed'.
"""
from __future__ import annotations
import argparse, functools, http.server, json, re, shutil, sys, tempfile, threading, time
from pathlib import Path
from urllib.parse import urlsplit, unquote

from bs4 import BeautifulSoup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import FLAGS, chromium_path  # noqa: E402
from build_site import TEST_CALL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

@functools.cache
def ids_of(page: Path) -> set:
    return set(re.findall(r'\s(?:id|name)="([^"]*)"', page.read_text(encoding='utf-8')))

def check_links(soup, page: Path) -> list[str]:
    "Local links that lead to no page of the site, or to an anchor that is not on it"
    problems = []
    for a in soup.find_all('a', href=True):
        u = urlsplit(a['href'])
        if u.scheme or u.netloc or u.fragment.startswith('/'): continue  # a link out, or reveal.js's own #/slide routes
        target = (page.parent/unquote(u.path)).resolve() if u.path else page
        if not target.is_file(): problems.append(f'broken link "{a["href"]}": no such page')
        elif u.fragment and target.suffix == '.html' and not {u.fragment, unquote(u.fragment)} & ids_of(target):
            problems.append(f'broken link "{a["href"]}": no anchor #{u.fragment} on {target.name}')
    return problems

def _ws(text: str) -> str: return re.sub(r'\s+', ' ', text).strip()

def check_content(soup, nb_path: Path, is_deck: bool) -> list[str]:
    "Hidden cells are not shown; a deck shows the cells marked for the slides and no test"
    cells = []
    for c in json.loads(nb_path.read_text(encoding='utf-8'))['cells']:
        src, code = ''.join(c.get('source', '')), c['cell_type'] == 'code'
        hidden = bool(re.search(r'^\s*#\|\s*(hide|default_exp)\b', src, re.M))
        marked = c.get('metadata', {}).get('slideshow', {}).get('slide_type') in ('slide', 'subslide', 'fragment')
        cells.append(dict(src=src, code=code, hidden=hidden,
                          slide=not hidden and marked and not (code and TEST_CALL.search(src))))
    blocks = [b.get_text() for b in soup.select('.jp-InputArea-editor')]
    shown = {_ws(line) for b in blocks for line in b.splitlines()}
    on_slides = [c for c in cells if c['slide']]

    def first_shown(bad: list, good: list) -> tuple | None:
        "The first line (of 20 characters or more, not an import) of a `bad` cell shown, that no `good` cell has"
        kept = [_ws(line) for c in good for line in c['src'].splitlines()]
        for i, c in bad:
            for line in map(_ws, c['src'].splitlines()):
                if len(line) >= 20 and not line.startswith(('#|', 'import ', 'from ')) and line in shown \
                        and not any(line in k for k in kept):
                    return i, line
    problems = []
    hidden = first_shown([(i, c) for i, c in enumerate(cells) if c['hidden'] and c['code']],
                         [c for c in cells if not c['hidden']])
    if hidden: problems.append(f'a line of hidden cell {hidden[0]} is shown: {hidden[1][:80]!r}')
    if not is_deck: return problems
    test = next((b for b in blocks if TEST_CALL.search(re.sub(r'[;:] ', '\n', b))), None)
    if test: problems.append(f'a test is on the slides: {_ws(test)[:80]!r}')
    left_out = [(i, c) for i, c in enumerate(cells) if not c['hidden'] and not c['slide']]
    extra = first_shown(left_out, on_slides)
    if extra: problems.append(f'cell {extra[0]}, not marked for the slides, is on them: {extra[1][:80]!r}')
    n = len(soup.select('.jp-Cell'))
    if n > max(1, len(on_slides)): problems.append(f'the deck has {n} cells, {len(on_slides)} marked for the slides')
    return problems

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

WAIT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  if (window.deck) { for (let i = 0; i < 100 && !deck.isReady(); i++) await new Promise(r => setTimeout(r, 50)); }
  await Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
  return {
    badImages: [...document.images].filter(i => !i.naturalWidth).map(i => i.currentSrc.slice(0, 60)),
    images: document.images.length, height: document.documentElement.scrollHeight,
    mathErrors: document.querySelectorAll('mjx-merror, .MathJax_Error').length,
    deckReady: window.deck ? deck.isReady() : null, slides: window.deck ? deck.getTotalSlides() : null,
  };
}"""

def open_page(ctx, url: str, local, problems: list, screenshot: Path | None = None, is_deck=False) -> dict:
    "Open `url` and note what went wrong in `problems`; `local(url)` says which requests are the site's"
    page = ctx.new_page()
    page.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text[:200]}'))
    page.on('pageerror', lambda e: problems.append(f'uncaught exception: {str(e)[:200]}'))
    page.on('requestfailed', lambda r: local(r.url) and problems.append(f'request failed: {r.url[:120]} ({r.failure})'))
    page.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url[:120]}'))
    try:
        page.goto(url, wait_until='load', timeout=60_000)
        info = page.evaluate(WAIT_JS)
        if info['badImages']: problems.append(f"{len(info['badImages'])} image(s) did not render: {info['badImages'][:3]}")
        if info['mathErrors']: problems.append(f"{info['mathErrors']} MathJax error(s)")
        if is_deck and not (info['deckReady'] and info['slides']): problems.append('reveal.js did not start a deck')
        if screenshot: page.screenshot(path=str(screenshot), full_page=not is_deck)
        return info
    except Exception as e:
        problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
        return {}
    finally: page.close()

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--site', default=str(ROOT/'_site'))
    ap.add_argument('--no-file', action='store_true', help='skip the second pass over file:// URLs')
    args = ap.parse_args(argv)
    site = Path(args.site).resolve()
    if not (site/'index.html').is_file(): sys.exit(f'{site}/index.html not found: build the site first (make site)')
    from playwright.sync_api import sync_playwright
    t0, shots = time.perf_counter(), site/'screenshots'
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir()
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f'127.0.0.1:{httpd.server_address[1]}'
    external = []

    def route(r):  # the site's own files only: any other request is noted and blocked
        u = urlsplit(r.request.url)
        if u.scheme in ('data', 'blob', 'about', 'file') or (u.scheme == 'http' and u.netloc == host): return r.continue_()
        external.append(r.request.url)
        r.abort('blockedbyclient')
    results = []
    with tempfile.TemporaryDirectory(prefix='site-test-chromium-') as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium_path('site-test'), args=FLAGS,
                                                    viewport={'width': 1280, 'height': 900}, service_workers='block')
        ctx.route('**/*', route)
        for p in sorted(site.glob('*.html')) + sorted((site/'slides').glob('*.slides.html')):
            rel, is_deck = p.relative_to(site).as_posix(), p.parent != site
            soup = BeautifulSoup(p.read_text(encoding='utf-8'), 'html.parser')
            problems = check_links(soup, p)
            nb = ROOT/'nbs'/(p.name.removesuffix('.slides.html').removesuffix('.html') + '.ipynb')
            if nb.is_file(): problems += check_content(soup, nb, is_deck)
            n_ext = len(external)
            shot = shots/(('slides-' if is_deck else '') + p.name.removesuffix('.html').removesuffix('.slides') + '.png')
            info = open_page(ctx, f'http://{host}/{rel}', lambda u: urlsplit(u).netloc == host, problems, shot, is_deck)
            if not args.no_file:
                on_file = []
                open_page(ctx, p.as_uri(), lambda u: u.startswith('file:'), on_file, None, is_deck)
                problems += [f'(file://) {x}' for x in on_file]
            problems += [f'request to another host (blocked): {u[:120]}' for u in external[n_ext:]]
            problems = list(dict.fromkeys(problems))
            what = f"{info.get('slides')} slides" if is_deck else f"{info.get('images')} images, {info.get('height')} px"
            results.append((rel, problems))
            print(f"{'FAIL' if problems else 'PASS'} {rel} ({what if info else ''})", flush=True)
            for x in problems: print(f'     {x}', flush=True)
        ctx.close()
    httpd.shutdown()
    nfail = sum(bool(pr) for _, pr in results)
    print(f'screenshots in {shots.relative_to(ROOT) if shots.is_relative_to(ROOT) else shots}; '
          f'{time.perf_counter()-t0:.0f} s')
    print(f'site: {len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

"""`make site-test`: each page and deck of `_site/` in headless Chromium, served at 1280 px (light) and 390 x 844 px
(dark), then from `file://`: no console error, failed request or request to another host; images, MathJax and reveal.js
working; no axe-core violation (WCAG 2 A and AA); a page's title in a phone's first screen; screenshots in
`_site_shots/`; `check_links`, `check_content`; Pagefind finds SEARCHES. Ends with 'site: N passed, N failed'.
"""
import functools, http.server, json, re, shutil, sys, tempfile, threading, time
from pathlib import Path
from urllib.parse import urlsplit, unquote

from bs4 import BeautifulSoup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import FLAGS, chromium_path  # noqa: E402
from build_site import TEST_CALL, only_imports  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT/'node_modules'/'axe-core'/'axe.min.js'
SEARCHES = ['broadcasting', 'sigmoid', 'gradient']

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
    """The title first; no code of a hidden, `default_exp` or exported imports-only cell shown; no default alt text; a
    deck shows only the cells marked for the slides, no test, and the speaker notes of those that have them"""
    code, hidden, on_slides, notes = [], set(), set(), False
    for c in json.loads(nb_path.read_text(encoding='utf-8'))['cells']:
        src, meta = ''.join(c.get('source', '')), c.get('metadata', {}).get('slideshow', {})
        if c['cell_type'] != 'code': continue
        body = _ws('\n'.join(line for line in src.splitlines() if not line.lstrip().startswith('#|')))
        code.append(body)
        if re.search(r'^\s*#\|\s*(hide|default_exp)\b', src, re.M) or \
                (re.search(r'^\s*#\|\s*export\b', src, re.M) and only_imports(src)): hidden.add(body)
        elif meta.get('slide_type') in ('slide', 'subslide', 'fragment') and not TEST_CALL.search(src):
            on_slides.add(body)
            notes = notes or bool(meta.get('notes'))
    blocks = [_ws(b.get_text()) for b in soup.select('.jp-InputArea-editor') if not b.find_parent('aside')]
    problems = [f'hidden or export-only cell shown: {b[:80]!r}' for b in blocks if b in hidden]
    problems += [f'{n} figure(s) with nbconvert\'s default alt text' for n in [len(soup.select(
        'img:not([alt]), img[alt^="No description"]'))] if n]
    first = soup.select_one('main .jp-Cell') if not is_deck else None
    if first and not first.find('h1'): problems.append(f'the page does not start with its title: {_ws(first.text)[:60]!r}')
    if not is_deck: return problems + ['speaker notes on a page'] * bool(soup.select('aside.notes'))
    problems += [f'a test is on the slides: {b[:80]!r}' for b in blocks if TEST_CALL.search(re.sub(r'[;:] ', '\n', b))]
    problems += [f'a cell not marked for the slides is on them: {b[:80]!r}' for b in blocks
                 if b in code and b not in on_slides]
    if notes and not soup.select('section aside.notes'): problems.append('the notebook has speaker notes, the deck none')
    return problems

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

WAIT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  if (window.deck) { for (let i = 0; i < 100 && !deck.isReady(); i++) await new Promise(r => setTimeout(r, 50)); }
  await Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
  const h1 = document.querySelector('main h1');
  return {
    badImages: [...document.images].filter(i => !i.naturalWidth).map(i => i.currentSrc.slice(0, 60)),
    images: document.images.length, titleTop: h1 && h1.getBoundingClientRect().top,
    mathErrors: document.querySelectorAll('mjx-merror, .MathJax_Error').length,
    deckReady: window.deck ? deck.isReady() : null, slides: window.deck ? deck.getTotalSlides() : null,
  };
}"""
AXE_JS = """async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})).violations
  .map(v => `axe ${v.id} (${v.impact}), ${v.nodes.length} element(s): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)"""

def open_page(ctx, url: str, local, problems: list, width=1280, scheme='light', shot: Path | None = None, is_deck=False):
    "Open `url` and note what went wrong in `problems` (axe-core's violations too, if `shot`)"
    page = ctx.new_page()
    page.set_viewport_size({'width': width, 'height': 844 if width < 800 else 900})
    page.emulate_media(color_scheme=scheme)
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
        if not shot: return info
        page.screenshot(path=str(shot), full_page=width > 800 and not is_deck)
        page.add_script_tag(path=str(AXE))
        problems.extend(f'({width} px, {scheme}) {v}' for v in page.evaluate(AXE_JS))
        if not is_deck and width < 800 and not 0 <= (info['titleTop'] or -1) < 844:
            problems.append(f"title not in the first screen at 390 x 844 (top: {info['titleTop']})")
        return info
    except Exception as e:
        problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
        return {}
    finally: page.close()

def search(ctx, base: str, word: str) -> list[str]:
    "Search from the home page; the first result (its heading, if it has one) opens a page that has the word"
    page = ctx.new_page()
    try:
        page.goto(f'{base}/index.html')
        page.fill('.pagefind-ui__search-input', word)
        page.wait_for_selector('.pagefind-ui__result-link', timeout=15_000)
        found = page.inner_text('.pagefind-ui__message')
        nested = page.locator('.pagefind-ui__result-nested .pagefind-ui__result-link')
        link = (nested if nested.count() else page.locator('.pagefind-ui__result-link')).first
        href = link.get_attribute('href')
        link.click()
        page.wait_for_load_state('load')
        print(f'     {found}; the first result opened {href}', flush=True)
        return [] if word in page.inner_text('main').lower() else [f'{href} does not have {word!r}']
    except Exception as e:
        return [f'search {word!r}: {type(e).__name__}: {str(e).splitlines()[0][:200]}']
    finally: page.close()

def main():
    site, shots = ROOT/'_site', ROOT/'_site_shots'
    if not (site/'index.html').is_file(): sys.exit('_site/index.html not found: build the site first (make site)')
    from playwright.sync_api import sync_playwright
    t0 = time.perf_counter()
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
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
                                                    service_workers='block')
        ctx.route('**/*', route)
        served = lambda u: urlsplit(u).netloc == host  # noqa: E731
        for p in sorted(site.glob('*.html')) + sorted((site/'slides').glob('*.slides.html')):
            rel, is_deck = p.relative_to(site).as_posix(), p.parent != site
            soup = BeautifulSoup(p.read_text(encoding='utf-8'), 'html.parser')
            problems = check_links(soup, p)
            nb = ROOT/'nbs'/(p.name.removesuffix('.slides.html').removesuffix('.html') + '.ipynb')
            if nb.is_file(): problems += check_content(soup, nb, is_deck)
            n_ext, name = len(external), ('slides-' if is_deck else '') + p.name.split('.')[0]
            info = open_page(ctx, f'http://{host}/{rel}', served, problems, 1280, 'light', shots/f'{name}-1280.png', is_deck)
            open_page(ctx, f'http://{host}/{rel}', served, problems, 390, 'dark', shots/f'{name}-390.png', is_deck)
            on_file = []
            open_page(ctx, p.as_uri(), lambda u: u.startswith('file:'), on_file, is_deck=is_deck)
            problems += [f'(file://) {x}' for x in on_file]
            problems += [f'request to another host (blocked): {u[:120]}' for u in external[n_ext:]]
            problems = list(dict.fromkeys(problems))
            results.append((rel, problems))
            what = '' if not info else f"{info['slides']} slides" if is_deck else f"{info['images']} images"
            print(f"{'FAIL' if problems else 'PASS'} {rel} ({what})", *problems, sep='\n     ', flush=True)
        for word in SEARCHES:
            results.append((f'search {word!r}', search(ctx, f'http://{host}', word)))
            print(f"{'FAIL' if results[-1][1] else 'PASS'} {results[-1][0]}", *results[-1][1], sep='\n     ', flush=True)
        ctx.close()
    httpd.shutdown()
    nfail = sum(bool(pr) for _, pr in results)
    print(f'screenshots in _site_shots; {time.perf_counter()-t0:.0f} s')
    print(f'site: {len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

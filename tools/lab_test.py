"""Run the series in JupyterLab in a real browser: `make lab-test`. Usage: python tools/lab_test.py [--jobs 2] [--lessons nbs] [NAME ...]

1. Starts JupyterLab the way `make lab` does (tools/lab.py: same settings, kernel culling, a working copy
   of nbs/), on a free port with a random token, on a fresh copy in _lab/test/nbs (your own _lab/nbs
   is not touched) and with settings and workspaces of its own in _lab/test/.
2. Headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) driven by Playwright loads JupyterLab in two
   pages (two notebooks at a time, the slowest first by the last run's times) and checks that no "Jupyter
   news" pop-up shows. Each page opens its notebooks one after the other (File > Open from Path), runs
   Run > Run All Cells, waits until the kernel is idle, saves the copy and fails on:
   - any error output (read from the saved copy), or a run that does not finish in time;
   - any widget shown as text (its repr) or as "Error displaying widget", or fewer widgets on the page
     than widget outputs in the notebook;
   - any ipywidgets slider whose output shows no picture, or whose picture or text does not change when
     the slider is moved with the keyboard;
   - any draw-a-digit canvas (mnist_basics.draw) that, given a 3 and then a 7 drawn with the mouse, does
     not show the drawing or answers anything but 3 and 7.
   Screenshots go to _lab/screenshots/: every notebook, each slider's output before and after the move,
   and each canvas with its 3 and its 7.
3. The kernels and the server are always stopped (the server's own shutdown, then its process group and
   every kernel process it started), and `git status` must be the same after the test as before.

Prints one line per notebook and ends with 'N passed, N failed'; exit status 1 if any failed.
"""
from __future__ import annotations
import argparse, asyncio, hashlib, json, os, re, secrets, shutil, signal, socket, subprocess, sys, time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import ROOT, LESSONS, lab_command, sync_copies  # noqa: E402

TEST = ROOT/'_lab'/'test'
SHOTS = ROOT/'_lab'/'screenshots'
TIMES = ROOT/'_lab'/'lab-test-times.json'
# Nothing may come from another host: the browser resolves no name but 127.0.0.1 (cheaper than intercepting every
# request), and a request that fails for another host is reported.
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']
RUN_TIMEOUT = 150  # seconds for one notebook's Run All
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)'  # the notebook on show (JupyterLab hides the others)
# what a widget looks like when the browser shows its text fallback instead of the widget
WIDGET_REPR = re.compile(r'^\s*(interactive|[A-Z]\w*(Slider|Box|Button|Output|Widget|Text|Dropdown|Digit|Canvas|Image|HTML|Label))\(')

# Strokes of a 3 and a 7 in a 0..1 square (fractions of the canvas), drawn with the mouse
DIGITS = {
    '3': [[(0.30, 0.22), (0.40, 0.14), (0.55, 0.12), (0.66, 0.18), (0.68, 0.30), (0.60, 0.40), (0.46, 0.46),
           (0.60, 0.50), (0.70, 0.60), (0.70, 0.72), (0.60, 0.82), (0.45, 0.85), (0.30, 0.78)]],
    '7': [[(0.28, 0.16), (0.72, 0.16), (0.62, 0.40), (0.52, 0.62), (0.45, 0.86)]],
}

class Stop(Exception): "a check failed: stop this notebook"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def chromium_path() -> str:
    exe = os.environ.get('CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(exe).exists(): sys.exit("Chromium not found: `make lab-test` installs Debian's chromium, or set CHROMIUM=/path/to/chromium")
    return exe

def git_state() -> dict:
    "`git status` and the content of every file it lists"
    out = subprocess.run(['git', 'status', '--porcelain=v1', '-uall'], cwd=ROOT, capture_output=True, text=True).stdout
    state = {}
    for line in out.splitlines():
        f = ROOT/line[3:].split(' -> ')[-1].strip('"')
        state[line] = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None
    return state

class Server:
    "JupyterLab started as `make lab` starts it; `stop()` ends it with every kernel it started"
    def __init__(self, work: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f'http://127.0.0.1:{self.port}'
        extra = ['--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={self.port}', '--ServerApp.port_retries=0',
                 f'--IdentityProvider.token={self.token}', f'--LabApp.user_settings_dir={TEST/"user-settings"}',
                 f'--LabApp.workspaces_dir={TEST/"workspaces"}']
        self.log = open(TEST/'server.log', 'w')
        env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}  # two kernels on two cores
        self.proc = subprocess.Popen(lab_command(work, extra), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        self.children: set = set()
        self.pending: list = []  # kernel shutdowns under way

    def api(self, path, method='GET', timeout=5):
        req = urllib.request.Request(self.base + path, method=method, headers={'Authorization': f'token {self.token}'})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if body else None

    def wait_ready(self, timeout=90):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None: raise RuntimeError(f'JupyterLab exited ({self.proc.returncode}); see {TEST/"server.log"}')
            try: self.api('/api/status', timeout=2); return
            except OSError: time.sleep(0.3)
        raise TimeoutError(f'JupyterLab did not answer within {timeout} s')

    def remember_children(self):
        "Kernels run in sessions of their own: note them while the server still knows them"
        try:
            import psutil
            self.children |= set(psutil.Process(self.proc.pid).children(recursive=True))
        except Exception: pass

    def kernel_ready(self, path: str) -> bool:
        "The server's view: the notebook's kernel exists, is idle, and the page is connected to it"
        try: sessions = self.api('/api/sessions')
        except OSError: return False
        ks = [s['kernel'] for s in sessions or [] if s.get('path') == path and s.get('kernel')]
        return any(k.get('execution_state') == 'idle' and k.get('connections', 0) >= 1 for k in ks)

    def shutdown_kernels(self, path: str):
        self.remember_children()
        for s in self.api('/api/sessions') or []:
            if s.get('path') == path:
                try: self.api(f"/api/sessions/{s['id']}", 'DELETE', timeout=20)
                except OSError: pass

    def stop(self) -> list[str]:
        "Stop kernels and server; returns what was still alive and had to be killed"
        self.remember_children()
        killed = []
        if self.proc.poll() is None:
            try: self.api('/api/shutdown', 'POST', timeout=10)
            except OSError: pass
            try: self.proc.wait(15)
            except subprocess.TimeoutExpired: killed.append('server')
        try: os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError): pass
        self.proc.wait()
        for c in self.children:
            try:
                if c.is_running() and c.status() != 'zombie': c.kill(); killed.append(f'pid {c.pid}')
            except Exception: pass
        self.log.close()
        return killed

# ---------------------------------------------------------------- the page

STATE_JS = """() => {
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
  const dialog = document.querySelector('.jp-Dialog');
  return {status: ind ? ind.getAttribute('data-status') : null, running: prompts.filter(t => t.includes('*')).length,
          executed: prompts.filter(t => /\[\d+\]/.test(t)).length,
          cells: nb.querySelectorAll('.jp-Cell').length, dialog: dialog ? dialog.innerText.slice(0, 200) : null,
          news: [...document.querySelectorAll('.Toastify, .jp-Notification-Toast, .jp-toast-message')].some(t => /news/i.test(t.textContent))};
}"""
WIDGETS_JS = r"""(reprPattern) => {
  // textContent, not innerText: JupyterLab skips rendering cells out of view, and innerText of those is empty
  const repr = new RegExp(reprPattern), out = [];
  let shown = 0;
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  for (const o of nb.querySelectorAll('.jp-OutputArea-output')) {
    const text = o.textContent || '';
    const mime = o.getAttribute('data-mime-type');
    if (/Error displaying widget|Loading widget/.test(text)) out.push('widget not displayed: ' + text.slice(0, 120));
    else if (mime === null || mime.includes('widget-view')) { if (o.firstElementChild) shown++; }  // a live widget view
    else if (repr.test(text)) out.push('widget shown as text: ' + text.slice(0, 120));
  }
  return {problems: out, shown};
}"""
# What a cell's output shows, minus the slider that is being moved (its readout changes by itself): its
# text and its pictures (blob: or data: URLs, new ones for a new picture)
OUTPUT_JS = """(el) => {
  const area = el.closest('.jp-Cell').querySelector('.jp-Cell-outputArea') || el.closest('.jp-OutputArea');
  const copy = area.cloneNode(true);
  copy.querySelectorAll('.widget-slider, .widget-hslider, .widget-vslider').forEach(e => e.remove());
  return {text: copy.textContent.replace(/\s+/g, ' ').trim(), pictures: [...copy.querySelectorAll('img')].map(i => i.getAttribute('src') || '')};
}"""

async def menu(page, top: str, item: str):
    "Click a menu bar entry, then one of its items, by their labels"
    await page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(f'^{top}$')).click()
    await page.locator('.lm-Menu-content .lm-Menu-itemLabel', has_text=re.compile(f'^{item}')).first.click()

async def wait_state(page, pred, timeout: float, what: str, problems: list):
    t0, steady = time.time(), 0
    while time.time() - t0 < timeout:
        st = await page.evaluate(STATE_JS)
        if st['dialog']:  # e.g. "Select Kernel": take the default
            btn = page.locator('.jp-Dialog .jp-mod-accept')
            if await btn.count(): await btn.first.click()
        if st['news']: problems.append('the "Jupyter news" pop-up is shown')
        steady = steady + 1 if pred(st) else 0
        if steady >= 2 or (steady and timeout <= 10): return st
        await asyncio.sleep(0.2)
    problems.append(f'{what} did not happen within {timeout} s')
    return None

async def shot(el, name: str):
    try: await el.screenshot(path=str(SHOTS/name))
    except Exception as e: print(f'     (screenshot {name} failed: {str(e).splitlines()[0][:100]})')

async def check_sliders(page, stem: str, problems: list) -> int:
    handles = page.locator(PANEL).locator('.jp-OutputArea-output .widget-slider .noUi-handle, .jp-OutputArea-output .widget-hslider .noUi-handle')
    n = await handles.count()
    for i in range(n):
        h = handles.nth(i)
        await h.scroll_into_view_if_needed()
        area = h.locator('xpath=ancestor::div[contains(@class,"jp-Cell-outputArea")]')
        before = await h.evaluate(OUTPUT_JS)
        await shot(area, f'{stem}-slider{i}-before.png')
        now = await h.get_attribute('aria-valuenow'); top = await h.get_attribute('aria-valuemax')
        await h.focus()
        await page.keyboard.press('ArrowLeft' if now is not None and now == top else 'ArrowRight')
        t0, after = time.time(), before
        while time.time() - t0 < 15 and after['pictures'] == before['pictures']:
            await asyncio.sleep(0.25)
            after = await h.evaluate(OUTPUT_JS)
        await asyncio.sleep(0.3)  # let a picture finish drawing before the screenshot
        await shot(area, f'{stem}-slider{i}-after.png')
        moved = await h.get_attribute('aria-valuenow')
        if moved == now: problems.append(f'slider {i}: the keyboard did not move it (value {now})')
        elif not before['pictures'] or not after['pictures']:
            problems.append(f'slider {i}: its output shows no picture' + (' after a move' if before['pictures'] else ''))
        elif after['pictures'] == before['pictures']: problems.append(f'slider {i}: moved from {now} to {moved}, its picture did not change')
        elif before['text'] and after['text'] == before['text']: problems.append(f'slider {i}: moved from {now} to {moved}, its text did not change')
    return n

async def draw(page, pad, strokes):
    box = await pad.bounding_box()
    for stroke in strokes:
        pts = [(box['x'] + x*box['width'], box['y'] + y*box['height']) for x, y in stroke]
        await page.mouse.move(*pts[0]); await page.mouse.down()
        for p in pts[1:]: await page.mouse.move(*p, steps=6)
        await page.mouse.up()

async def check_canvases(page, stem: str, problems: list, answers: list) -> int:
    widgets = page.locator(PANEL).locator('.jp-OutputArea-output .mnist-draw')
    n = await widgets.count()
    for i in range(n):
        w = widgets.nth(i)
        await w.scroll_into_view_if_needed()
        pad = w.locator('canvas.mnist-draw-pad')
        for digit, strokes in DIGITS.items():
            await w.locator('button.mnist-draw-clear').click()
            await page.wait_for_function('(el) => el.dataset.strokes === "0"', arg=await w.element_handle(), timeout=15_000)
            await draw(page, pad, strokes)
            try: await page.wait_for_function('(el) => el.dataset.strokes === String(el.dataset.sent)', arg=await w.element_handle(), timeout=30_000)
            except Exception: problems.append(f'canvas {i}: no answer after drawing a {digit}'); continue
            await asyncio.sleep(0.3)
            await shot(w, f'{stem}-draw{i}-{digit}.png')
            said = [t.strip() for t in await w.locator('.mnist-draw-answer').all_inner_texts()]
            ink = await w.evaluate('(el) => Number(el.dataset.ink || 0)')
            answers.append(f'drew a {digit}: ' + '; '.join(said))
            if not ink: problems.append(f'canvas {i}: the 28x28 picture of the {digit} is empty')
            if not said: problems.append(f'canvas {i}: no classifier answer shown')
            for s in said:
                m = re.search(r'\d', s.split(':', 1)[-1])
                if not m or m.group() != digit: problems.append(f'canvas {i}: drew a {digit}, the answer was "{s}"')
    return n

async def open_lab(browser, server: Server, name: str):
    "A browser page with JupyterLab loaded on an empty workspace of its own"
    # a context of its own: JupyterLab tells its windows apart by name, and two at once in one context clash
    ctx = await browser.new_context(viewport={'width': 1200, 'height': 800})
    page = await ctx.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(f'uncaught exception in the page: {str(e)[:160]}'))
    page.on('requestfailed', lambda r: None if r.url.startswith((server.base, 'data:', 'blob:')) else errors.append(f'request to another host: {r.url[:160]}'))
    await page.goto(f'{server.base}/lab/workspaces/{name}?reset&token={server.token}', timeout=90_000)
    await page.wait_for_selector('.lm-MenuBar-itemLabel', timeout=90_000)
    return ctx, page, errors

async def open_notebook(page, nb: str):
    "File > Open from Path...: the notebook opens in the JupyterLab already loaded (no page load)"
    await menu(page, 'File', 'Open from Path')
    box = page.locator('.jp-Dialog input')
    await box.fill(nb)
    await box.press('Enter')
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current', has_text=nb).wait_for(timeout=60_000)
    await page.wait_for_selector(f'{PANEL} .jp-Notebook-ExecutionIndicator', timeout=60_000)
    side = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current')
    if await side.count(): await side.first.click()  # fold the file browser away: more notebook in the screenshots

async def run_notebook(page, errors: list, server: Server, work: Path, nb: str) -> tuple[str, list, list, float]:
    t0, problems, notes = time.time(), [], []
    stem = Path(nb).stem
    errors.clear()
    try:
        saved_before = (work/nb).stat().st_mtime_ns
        n_code = sum(c['cell_type'] == 'code' and ''.join(c['source']).strip() != ''
                     for c in json.loads((work/nb).read_text(encoding='utf-8'))['cells'])
        await open_notebook(page, nb)
        if not await wait_state(page, lambda s: s['status'] == 'idle', 60, 'the kernel starting', problems): raise Stop
        for _ in range(240):  # the page can say idle before the kernel is connected; Run All then runs only the first cell
            if await asyncio.to_thread(server.kernel_ready, nb): break
            await asyncio.sleep(0.25)
        else: problems.append('the kernel did not connect within 60 s'); raise Stop
        await asyncio.sleep(0.2)
        for attempt in range(3):  # the menu item does nothing until the notebook is ready: try again
            await menu(page, 'Run', 'Run All Cells$')
            if not n_code or await wait_state(page, lambda s: s['running'] or s['executed'], 10, 'Run All starting', []): break
        else: problems.append('Run All Cells did not start the cells'); raise Stop
        if not await wait_state(page, lambda s: s['status'] == 'idle' and s['running'] == 0, RUN_TIMEOUT, 'Run All finishing', problems):
            raise Stop
        run_s = time.time() - t0
        for _ in range(60):  # widget views load after their cell has finished
            w = await page.evaluate(WIDGETS_JS, WIDGET_REPR.pattern)
            if not any('Loading widget' in x for x in w['problems']): break
            await asyncio.sleep(0.5)
        problems += w['problems']
        n_sliders = await check_sliders(page, stem, problems)
        answers = []
        n_pads = await check_canvases(page, stem, problems, answers)
        await menu(page, 'File', 'Save Notebook$|Save$')
        for _ in range(50):
            if (work/nb).stat().st_mtime_ns != saved_before: break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
        cells = json.loads((work/nb).read_text(encoding='utf-8'))['cells']
        outs = [(i, o) for i, c in enumerate(cells) for o in c.get('outputs', [])]
        for i, o in outs:
            if o.get('output_type') == 'error': problems.append(f"cell {i}: {o.get('ename')}: {' | '.join(str(o.get('evalue')).splitlines())[:200]}")
        executed = sum(c['cell_type'] == 'code' and c.get('execution_count') is not None for c in cells)
        if executed < n_code and not any(o.get('output_type') == 'error' for _, o in outs):
            problems.append(f'only {executed} of {n_code} code cells ran')
        n_widgets = sum(WIDGET_MIME in o.get('data', {}) for _, o in outs)
        if w['shown'] < n_widgets: problems.append(f"{n_widgets} widget outputs, {w['shown']} shown as widgets")
        await page.evaluate("() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer'); if (s) s.scrollTop = 0; }")
        await asyncio.sleep(0.2)
        await page.screenshot(path=str(SHOTS/f'{stem}.png'))
        counts = [(n_widgets, 'widgets'), (n_sliders, 'sliders moved'), (n_pads, 'canvases drawn on')]
        notes.append(f'{executed} cells run in {run_s:.0f} s' + ''.join(f', {w}: {k}' for k, w in counts if k))
        notes += answers
    except Stop: pass
    except Exception as e:
        problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
    finally:
        if problems:
            try: await page.screenshot(path=str(SHOTS/f'{stem}.png'))
            except Exception: pass
        try:  # close the tab (the copy is saved, or failed anyway: do not keep it), then stop its kernel
            await menu(page, 'File', 'Close Tab')
            discard = page.locator('.jp-Dialog .jp-mod-warn, .jp-Dialog button:has-text("Discard")')
            await page.wait_for_timeout(300)
            if await discard.count(): await discard.first.click()
        except Exception: pass
        # its kernel is stopped in the background while the next notebook opens (server.stop() waits for it)
        server.pending.append(asyncio.create_task(asyncio.to_thread(server.shutdown_kernels, nb)))
    problems = list(dict.fromkeys(problems + errors))
    print(f"{'PASS' if not problems else 'FAIL'} {nb} ({time.time()-t0:.0f} s" + ''.join(f'; {x}' for x in notes) + ')', flush=True)
    for p in problems: print(f'     {p}', flush=True)
    return nb, problems, notes, time.time() - t0

async def worker(k: int, browser, server: Server, work: Path, queue: list, results: list):
    "One browser page: JupyterLab loaded once, the notebooks from `queue` opened in it one after another"
    ctx, page, errors = await open_lab(browser, server, f'lab-test-{k}')
    try:
        while queue:
            results.append(await run_notebook(page, errors, server, work, queue.pop(0)))
    finally: await ctx.close()

async def drive(server: Server, work: Path, names: list[str], jobs: int):
    from playwright.async_api import async_playwright
    results, queue = [], list(names)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        try: await asyncio.gather(*(worker(k, browser, server, work, queue, results) for k in range(jobs)))
        finally:
            await asyncio.gather(*server.pending, return_exceptions=True)
            await browser.close()
    return results

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', help='notebooks to run (default: every notebook in nbs/)')
    ap.add_argument('--jobs', type=int, default=2, help='notebooks run at once')
    ap.add_argument('--lessons', default=str(LESSONS), help='the folder of notebooks to copy and run (default nbs/)')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: still stop the server and kernels (finally below)
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    chromium_path()
    git_before = git_state()
    shutil.rmtree(TEST, ignore_errors=True); shutil.rmtree(SHOTS, ignore_errors=True)
    TEST.mkdir(parents=True); SHOTS.mkdir(parents=True)
    work = TEST/'nbs'
    lessons = Path(args.lessons).resolve()
    sync_copies(lessons, work, fresh=True)
    names = sorted(p.name for p in lessons.glob('*.ipynb'))
    if args.names: names = [n for n in names if any(a in n for a in args.names)]
    times = json.loads(TIMES.read_text()) if TIMES.is_file() else {}
    names.sort(key=lambda n: -times.get(n, 60))  # the slowest first (last run's times), so none is left running alone at the end
    results, server = [], None
    try:
        server = Server(work)
        server.wait_ready()
        print(f'JupyterLab up at {server.base} in {time.perf_counter()-t0:.0f} s; {len(names)} notebooks, {args.jobs} at a time', flush=True)
        results = list(asyncio.run(drive(server, work, names, args.jobs)))
        TIMES.write_text(json.dumps({**times, **{r[0]: round(r[3]) for r in results}}, indent=1))
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        results.append(('(JupyterLab)', [f'{type(e).__name__}: {e}'], [], 0))
        print(f'FAIL {results[-1][0]}: {results[-1][1][0]}')
    finally:
        if server:
            killed = server.stop()
            ok = server.proc.poll() is not None
            results.append(('server and kernels stopped', [] if ok else ['the server is still running'], [], 0))
            print(f"{'PASS' if ok else 'FAIL'} server and kernels stopped" + (f" (killed: {', '.join(killed)})" if killed else ''))
    git_after = git_state()
    changed = sorted({line.strip() for line, _ in set(git_before.items()) ^ set(git_after.items())})
    results.append(('git status unchanged', [f'changed: {c}' for c in changed], [], 0))
    print(f"{'FAIL' if changed else 'PASS'} git status " + ('changed while the test ran: ' + ', '.join(changed) if changed
          else 'clean' if not git_after else f'unchanged ({len(git_after)} entries were already there before the test)'))
    nfail = sum(bool(r[1]) for r in results)
    print(f'screenshots in {SHOTS.relative_to(ROOT)}; {time.perf_counter()-t0:.0f} s')
    print(f'{len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

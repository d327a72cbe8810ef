"""Every notebook run in JupyterLab in headless Chromium: `make lab-test`. Usage: python tools/lab_test.py [NAME ...]

JupyterLab starts as `make lab` starts it, on a fresh copy of nbs/ in _lab/test/nbs; Playwright runs two notebooks at
a time (Run All Cells, then save). A notebook fails on an error output (outside a cell tagged `raises-exception`), a
Run All that does not finish, the "Jupyter news" pop-up, a request to another host, a widget shown as text, a slider
whose picture does not change when moved, or a draw-a-digit canvas that does not answer 3 and 7 for a 3 and a 7.
Memory: the kernel's peak private memory (RssAnon) and peak RSS (VmHWM), sampled every 0.5 s, are reported; a lesson
(10_ to 29_) fails above 800 MB private. Private, because `from fastai.vision.all import *` maps ~340 MB of shared
library code besides ~480 MB of its own: RSS is never under 800 MB. At the end `git status` must be unchanged.
"""
from __future__ import annotations
import argparse, asyncio, hashlib, json, os, re, secrets, shutil, signal, socket, subprocess, sys, time
import urllib.request
from contextlib import suppress
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import FLAGS, chromium_path, shot  # noqa: E402
from lab import ROOT, LESSONS, KERNEL_ENV, lab_command, sync_copies  # noqa: E402

TEST, SHOTS, TIMES = ROOT/'_lab'/'test', ROOT/'_lab'/'screenshots', ROOT/'_lab'/'lab-test-times.json'
# the browser resolves no name but 127.0.0.1: nothing can come from another host
OFFLINE = ['--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']
RUN_TIMEOUT = 300        # seconds for one notebook's Run All (20_nonlinearity's ResNet epoch takes about 2 min)
LESSON_BUDGET_MB = 800   # peak private memory (RssAnon) of a lesson's kernel, MB of 10^6 bytes
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)'  # the notebook on show (JupyterLab hides the others)
# a widget shown as its text fallback instead of the widget
WIDGET_REPR = r'^\s*(interactive|[A-Z]\w*(Slider|Box|Button|Output|Widget|Text|Dropdown|Canvas|Image|HTML|Label))\('
SOURCES = 'imgs => imgs.map(i => i.src)'  # what a slider's pictures show
# strokes of a 3 and a 7, as fractions of the canvas, drawn with the mouse
DIGITS = {
    '3': [(0.30, 0.22), (0.40, 0.14), (0.55, 0.12), (0.66, 0.18), (0.68, 0.30), (0.60, 0.40), (0.46, 0.46),
          (0.60, 0.50), (0.70, 0.60), (0.70, 0.72), (0.60, 0.82), (0.45, 0.85), (0.30, 0.78)],
    '7': [(0.28, 0.16), (0.72, 0.16), (0.62, 0.40), (0.52, 0.62), (0.45, 0.86)],
}

class Stop(Exception): "a check failed: stop this notebook"

def git_state() -> dict:
    "`git status` and the content of every file it lists"
    lines = subprocess.run(['git', 'status', '--porcelain=v1', '-uall'], cwd=ROOT, capture_output=True, text=True)
    files = {line: ROOT/line[3:].split(' -> ')[-1].strip('"') for line in lines.stdout.splitlines()}
    return {line: hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None for line, f in files.items()}

def memory(pid: int) -> dict:
    "RssAnon and VmHWM of a process in bytes, from /proc/<pid>/status"
    status = Path(f'/proc/{pid}/status').read_text()
    return {k: int(re.search(rf'^{k}:\s+(\d+) kB', status, re.M).group(1)) * 1024 for k in ('RssAnon', 'VmHWM')}

def mb(n: int) -> str: return f'{n/1e6:,.0f} MB'

class Server:
    "JupyterLab started as `make lab` starts it, on a free port; `stop()` ends it with its kernels"
    def __init__(self, work: Path):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        self.token, self.base = secrets.token_hex(16), f'http://127.0.0.1:{port}'
        extra = ['--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}', '--ServerApp.port_retries=0',
                 f'--IdentityProvider.token={self.token}', f'--LabApp.user_settings_dir={TEST/"user-settings"}',
                 f'--LabApp.workspaces_dir={TEST/"workspaces"}']
        env = {**os.environ, **KERNEL_ENV, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}  # two kernels on two cores
        with open(TEST/'server.log', 'w') as log:
            self.proc = psutil.Popen(lab_command(work, extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # Ctrl-C reaches this script, which stops the server
        self.kernels_seen: set = set()  # stopped at the end even if the server is gone
        self.pending: list = []         # kernel shutdowns under way

    def api(self, path, method='GET', timeout=5):
        req = urllib.request.Request(self.base + path, method=method, headers={'Authorization': f'token {self.token}'})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout=90):
        for _ in range(int(timeout / 0.3)):
            if self.proc.poll() is not None:
                raise RuntimeError(f'JupyterLab exited ({self.proc.returncode}); see {TEST/"server.log"}')
            with suppress(OSError, TypeError): return self.api('/api/status', timeout=2)
            time.sleep(0.3)
        raise TimeoutError(f'JupyterLab did not answer within {timeout} s')

    def sessions(self, path: str) -> list[dict]:
        with suppress(OSError, TypeError):
            return [s for s in self.api('/api/sessions') if s['path'] == path and s.get('kernel')]
        return []

    def kernel_ready(self, path: str) -> bool:
        "The notebook's kernel is idle and the page is connected to it"
        return any(s['kernel'].get('execution_state') == 'idle' and s['kernel'].get('connections', 0)
                   for s in self.sessions(path))

    def kernel_process(self, path: str):
        "The process of the notebook's kernel (its command line names the kernel's id), or None"
        ids = [s['kernel']['id'] for s in self.sessions(path)]
        for p in self.proc.children(recursive=True):
            with suppress(psutil.Error):
                if any(i in ' '.join(p.cmdline()) for i in ids):
                    self.kernels_seen.add(p)
                    return p

    def shutdown_kernels(self, path: str):
        for s in self.sessions(path):
            with suppress(OSError): self.api(f"/api/sessions/{s['id']}", 'DELETE', timeout=20)

    def stop(self) -> list[str]:
        "Stop the server and every kernel; returns those that did not stop on SIGTERM and were killed"
        procs = {self.proc, *self.kernels_seen}
        if self.proc.is_running(): procs |= set(self.proc.children(recursive=True))
        for p in procs:
            with suppress(psutil.Error): p.terminate()
        _, alive = psutil.wait_procs(procs, timeout=15)
        for p in alive:
            with suppress(psutil.Error): p.kill()
        return [f'pid {p.pid}' for p in alive]

async def sample_memory(server: Server, nb: str, peak: dict):
    "Every 0.5 s until cancelled: the peak RssAnon and VmHWM of the notebook's kernel, into `peak`"
    proc = None
    while True:
        proc = proc or await asyncio.to_thread(server.kernel_process, nb)
        try:
            if proc:
                for k, v in memory(proc.pid).items(): peak[k] = max(v, peak.get(k, 0))
        except (OSError, AttributeError):
            proc = None  # the kernel restarted or stopped
        await asyncio.sleep(0.5)

# ---------------------------------------------------------------- the page

STATE_JS = f"""() => {{
  const nb = document.querySelector('{PANEL}') || document;
  const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
  return {{status: nb.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status'),
          running: prompts.filter(t => t.includes('*')).length,
          executed: prompts.filter(t => /\\[\\d+\\]/.test(t)).length}};
}}"""
WIDGETS_JS = f"""(reprPattern) => {{
  // textContent, not innerText: JupyterLab skips rendering cells out of view, and innerText of those is empty
  const repr = new RegExp(reprPattern), problems = [];
  let shown = 0;
  for (const o of (document.querySelector('{PANEL}') || document).querySelectorAll('.jp-OutputArea-output')) {{
    const text = o.textContent || '', mime = o.getAttribute('data-mime-type');
    if (/Error displaying widget|Loading widget/.test(text)) problems.push('widget not displayed: ' + text.slice(0, 120));
    else if (mime === null || mime.includes('widget-view')) shown += !!o.firstElementChild;  // a live widget view
    else if (repr.test(text)) problems.push('widget shown as text: ' + text.slice(0, 120));
  }}
  return {{problems, shown}};
}}"""

async def menu(page, top: str, item: str):
    "Click a menu bar entry, then one of its items, by their labels"
    await page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(f'^{top}$')).click()
    await page.locator('.lm-Menu-content .lm-Menu-itemLabel', has_text=re.compile(f'^{item}')).first.click()

async def wait_state(page, pred, timeout: float, what: str, problems: list):
    "Poll the notebook's state until `pred` holds twice in a row; a dialog (e.g. Select Kernel) gets its default"
    steady = 0
    for _ in range(int(timeout / 0.2)):
        accept = page.locator('.jp-Dialog .jp-mod-accept')
        if await accept.count(): await accept.first.click()
        state = await page.evaluate(STATE_JS)
        steady = steady + 1 if pred(state) else 0
        if steady >= 2: return state
        await asyncio.sleep(0.2)
    problems.append(f'{what} did not happen within {timeout} s')
    return None

async def check_sliders(page, stem: str, problems: list) -> int:
    "Move each slider one step with the keyboard: the picture of its output must change"
    sliders = '.jp-OutputArea-output :is(.widget-slider, .widget-hslider) .noUi-handle'
    handles = page.locator(PANEL).locator(sliders)
    for i in range(await handles.count()):
        h = handles.nth(i)
        await h.scroll_into_view_if_needed()
        area = h.locator('xpath=ancestor::div[contains(@class,"jp-Cell-outputArea")]')
        before = await area.locator('img').evaluate_all(SOURCES)
        now, top = await h.get_attribute('aria-valuenow'), await h.get_attribute('aria-valuemax')
        await h.focus()
        await page.keyboard.press('ArrowLeft' if now is not None and now == top else 'ArrowRight')
        for _ in range(60):  # up to 15 s for the picture to change
            await asyncio.sleep(0.25)
            after = await area.locator('img').evaluate_all(SOURCES)
            if after != before: break
        await asyncio.sleep(0.3)  # let the picture finish drawing before the screenshot
        await shot(area, SHOTS/f'{stem}-slider{i}-after.png')
        moved = await h.get_attribute('aria-valuenow')
        if moved == now: problems.append(f'slider {i}: the keyboard did not move it (value {now})')
        elif not before or not after:
            problems.append(f'slider {i}: its output shows no picture' + (' after a move' if before else ''))
        elif after == before: problems.append(f'slider {i}: moved from {now} to {moved}, its picture did not change')
    return await handles.count()

async def check_canvases(page, stem: str, problems: list, answers: list) -> int:
    "Draw a 3 and a 7 on each draw-a-digit canvas: the classifier must answer 3 and 7"
    widgets = page.locator(PANEL).locator('.jp-OutputArea-output .mnist-draw')
    for i in range(await widgets.count()):
        w = widgets.nth(i)
        await w.scroll_into_view_if_needed()
        for digit, stroke in DIGITS.items():
            await w.locator('button.mnist-draw-clear').click()
            el = await w.element_handle()
            await page.wait_for_function('(el) => el.dataset.strokes === "0"', arg=el, timeout=15_000)
            box = await w.locator('canvas.mnist-draw-pad').bounding_box()
            points = [(box['x'] + x*box['width'], box['y'] + y*box['height']) for x, y in stroke]
            await page.mouse.move(*points[0])
            await page.mouse.down()
            for p in points[1:]: await page.mouse.move(*p, steps=6)
            await page.mouse.up()
            answered = '(el) => el.dataset.strokes === String(el.dataset.sent)'
            try: await page.wait_for_function(answered, arg=el, timeout=30_000)
            except Exception:
                problems.append(f'canvas {i}: no answer after drawing a {digit}')
                continue
            await asyncio.sleep(0.3)
            await shot(w, SHOTS/f'{stem}-draw{i}-{digit}.png')
            said = [t.strip() for t in await w.locator('.mnist-draw-answer').all_inner_texts()]
            answers.append(f'drew a {digit}: ' + '; '.join(said))
            if not await w.evaluate('(el) => Number(el.dataset.ink || 0)'):
                problems.append(f'canvas {i}: the 28x28 picture of the {digit} is empty')
            if not said: problems.append(f'canvas {i}: no classifier answer shown')
            for s in said:
                m = re.search(r'\d', s.split(':', 1)[-1])
                if not m or m.group() != digit: problems.append(f'canvas {i}: drew a {digit}, the answer was "{s}"')
    return await widgets.count()

async def open_notebook(page, nb: str):
    "File > Open from Path...: the notebook opens in the JupyterLab already loaded (no page load)"
    await menu(page, 'File', 'Open from Path')
    await page.locator('.jp-Dialog input').fill(nb)
    await page.locator('.jp-Dialog input').press('Enter')
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current', has_text=nb).wait_for(timeout=60_000)
    await page.wait_for_selector(f'{PANEL} .jp-Notebook-ExecutionIndicator', timeout=60_000)
    side = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current')
    if await side.count(): await side.first.click()  # fold the file browser away: more notebook in the screenshots

async def run_all(page, server: Server, nb: str, n_code: int, problems: list):
    "Run All Cells once the kernel is connected, and wait for the last cell"
    if not await wait_state(page, lambda s: s['status'] == 'idle', 60, 'the kernel starting', problems): raise Stop
    for _ in range(240):  # the page can say idle before the kernel is connected; Run All then runs only one cell
        if await asyncio.to_thread(server.kernel_ready, nb): break
        await asyncio.sleep(0.25)
    else:
        problems.append('the kernel did not connect within 60 s')
        raise Stop
    for _ in range(3):  # the menu item does nothing until the notebook is ready: try again
        await menu(page, 'Run', 'Run All Cells$')
        if not n_code or await wait_state(page, lambda s: s['running'] or s['executed'], 10, 'Run All', []): break
    else:
        problems.append('Run All Cells did not start the cells')
        raise Stop
    finished = lambda s: s['status'] == 'idle' and s['running'] == 0  # noqa: E731
    if not await wait_state(page, finished, RUN_TIMEOUT, 'Run All finishing', problems): raise Stop

async def run_notebook(page, errors: list, server: Server, work: Path, nb: str) -> tuple[str, list, dict, float]:
    t0, problems, notes, peak, stem = time.time(), [], [], {}, Path(nb).stem
    errors.clear()
    sampler = asyncio.create_task(sample_memory(server, nb, peak))
    try:
        saved_before = (work/nb).stat().st_mtime_ns
        cells = json.loads((work/nb).read_text(encoding='utf-8'))['cells']
        n_code = sum(c['cell_type'] == 'code' and ''.join(c['source']).strip() != '' for c in cells)
        await open_notebook(page, nb)
        await run_all(page, server, nb, n_code, problems)
        run_s = time.time() - t0
        for _ in range(60):  # widget views load after their cell has finished
            w = await page.evaluate(WIDGETS_JS, WIDGET_REPR)
            if not any('Loading widget' in x for x in w['problems']): break
            await asyncio.sleep(0.5)
        problems += w['problems']
        if await page.locator('.jp-toast-message, .Toastify', has_text=re.compile('news', re.I)).count():
            problems.append('the "Jupyter news" pop-up is shown')
        n_sliders = await check_sliders(page, stem, problems)
        answers = []
        n_pads = await check_canvases(page, stem, problems, answers)
        await menu(page, 'File', 'Save Notebook$|Save$')
        for _ in range(50):
            if (work/nb).stat().st_mtime_ns != saved_before: break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
        cells = json.loads((work/nb).read_text(encoding='utf-8'))['cells']
        outs = [(c, o) for c in cells for o in c.get('outputs', [])]
        for c, o in outs:  # a cell tagged raises-exception shows the book's failing line on purpose
            if o.get('output_type') == 'error' and 'raises-exception' not in c.get('metadata', {}).get('tags', []):
                evalue = ' | '.join(str(o.get('evalue')).splitlines())[:200]
                problems.append(f"cell {cells.index(c)}: {o.get('ename')}: {evalue}")
        executed = sum(c['cell_type'] == 'code' and c.get('execution_count') is not None for c in cells)
        if executed < n_code and not problems: problems.append(f'only {executed} of {n_code} code cells ran')
        n_widgets = sum(WIDGET_MIME in o.get('data', {}) for _, o in outs)
        if w['shown'] < n_widgets: problems.append(f"{n_widgets} widget outputs, {w['shown']} shown as widgets")
        await page.evaluate(f"() => document.querySelector('{PANEL} .jp-WindowedPanel-outer')?.scrollTo(0, 0)")
        await shot(page, SHOTS/f'{stem}.png')
        counts = [(n_widgets, 'widgets'), (n_sliders, 'sliders moved'), (n_pads, 'canvases drawn on')]
        notes.append(f'{executed} cells run in {run_s:.0f} s' + ''.join(f', {w}: {k}' for k, w in counts if k))
        notes += answers
    except Stop: pass
    except Exception as e:
        problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
    finally:
        sampler.cancel()
        if problems: await shot(page, SHOTS/f'{stem}.png')
        with suppress(Exception):  # close the tab (the copy is saved, or failed anyway: do not keep it)
            await menu(page, 'File', 'Close Tab')
            await page.wait_for_timeout(300)
            discard = page.locator('.jp-Dialog .jp-mod-warn')
            if await discard.count(): await discard.first.click()
        # the kernel stops in the background while the next notebook opens (stop() ends any left)
        server.pending.append(asyncio.create_task(asyncio.to_thread(server.shutdown_kernels, nb)))
    if not peak: problems.append(f"{nb}: the kernel's memory could not be read")
    else:
        notes.append(f"kernel peak: private (RssAnon) {mb(peak['RssAnon'])}, RSS (VmHWM) {mb(peak['VmHWM'])}")
        if stem[:1] in '12' and peak['RssAnon'] > LESSON_BUDGET_MB * 1e6:
            problems.append(f"{nb}: the kernel's private memory peaked at {mb(peak['RssAnon'])}, "
                            f"over the lesson budget of {LESSON_BUDGET_MB} MB")
    problems = list(dict.fromkeys(problems + errors))
    print(f"{'FAIL' if problems else 'PASS'} {nb} ({time.time()-t0:.0f} s; " + '; '.join(notes) + ')', flush=True)
    for p in problems: print(f'     {p}', flush=True)
    return nb, problems, peak, time.time() - t0

async def worker(k: int, browser, server: Server, work: Path, queue: list, results: list):
    "One browser page: JupyterLab loaded once, the notebooks from `queue` opened in it one after another"
    # a context of its own: JupyterLab tells its windows apart by name, and two at once in one context clash
    ctx = await browser.new_context(viewport={'width': 1200, 'height': 800})
    page, errors = await ctx.new_page(), []
    page.on('pageerror', lambda e: errors.append(f'uncaught exception in the page: {str(e)[:160]}'))
    local = (server.base, 'data:', 'blob:')
    page.on('requestfailed', lambda r: r.url.startswith(local) or errors.append(f'request to another host: {r.url[:160]}'))
    try:
        await page.goto(f'{server.base}/lab/workspaces/lab-test-{k}?reset&token={server.token}', timeout=90_000)
        await page.wait_for_selector('.lm-MenuBar-itemLabel', timeout=90_000)
        while queue: results.append(await run_notebook(page, errors, server, work, queue.pop(0)))
    finally:
        await ctx.close()

async def drive(server: Server, work: Path, names: list[str], jobs: int):
    from playwright.async_api import async_playwright
    results, queue = [], list(names)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path('lab-test'), args=FLAGS + OFFLINE)
        try:
            await asyncio.gather(*(worker(k, browser, server, work, queue, results) for k in range(jobs)))
        finally:
            await asyncio.gather(*server.pending, return_exceptions=True)
            await browser.close()
    return results

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', help='notebooks to run: names or parts of names (default: every notebook)')
    ap.add_argument('--jobs', type=int, default=2, help='notebooks run at once')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: still stop the server and kernels
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    chromium_path('lab-test')
    git_before = git_state()
    for d in (TEST, SHOTS):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    work = TEST/'nbs'
    sync_copies(LESSONS, work, fresh=True)
    names = sorted(p.name for p in LESSONS.glob('*.ipynb') if not args.names or any(a in p.name for a in args.names))
    times = json.loads(TIMES.read_text()) if TIMES.is_file() else {}
    names.sort(key=lambda n: -times.get(n, 60))  # the slowest first, so none is left running alone at the end
    results, server = [], None
    try:
        server = Server(work)
        server.wait_ready()
        print(f'JupyterLab up at {server.base} in {time.perf_counter()-t0:.0f} s; {len(names)} notebooks, '
              f'{args.jobs} at a time', flush=True)
        results = asyncio.run(drive(server, work, names, args.jobs))
        TIMES.write_text(json.dumps({**times, **{r[0]: round(r[3]) for r in results}}, indent=1))
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        results.append(('(JupyterLab)', [f'{type(e).__name__}: {e}'], {}, 0))
        print(f'FAIL {results[-1][0]}: {results[-1][1][0]}')
    finally:
        if server:
            killed = server.stop()
            print('PASS server and kernels stopped' + (f" (killed: {', '.join(killed)})" if killed else ''))
    changed = sorted({line.strip() for line, _ in set(git_before.items()) ^ set(git_state().items())})
    results.append(('git status unchanged', [f'changed: {c}' for c in changed], {}, 0))
    print(f"{'FAIL' if changed else 'PASS'} git status unchanged" + ''.join(f'\n     changed: {c}' for c in changed))
    nfail = sum(bool(r[1]) for r in results)
    print(f'screenshots in {SHOTS.relative_to(ROOT)}; {time.perf_counter()-t0:.0f} s')
    print(f'{len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

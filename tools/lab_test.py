"""`make lab-test` (usage: lab_test.py [NAME ...] [--record]): JupyterLab as `make lab` starts it, on fresh copies in
_lab/test/nbs; two notebooks at a time get Run All and the checks below (screenshots in _lab/screenshots/). A lesson's
kernel (10_ to 29_) fails above 800 MB of private memory (RssAnon: fastai's import alone maps ~340 MB of shared code).
`git status` must end unchanged. `--record` saves the canvas at work to nbs/images/draw_digit.webp.
"""
from __future__ import annotations
import argparse, asyncio, io, json, os, re, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from contextlib import suppress
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import ROOT, LESSONS, KERNEL_ENV, FLAGS, chromium_path, git_state, lab_command, sync_copies  # noqa: E402

TEST, SHOTS, TIMES = ROOT/'_lab'/'test', ROOT/'_lab'/'screenshots', ROOT/'_lab'/'lab-test-times.json'
RECORDING = LESSONS/'images'/'draw_digit.webp'
OFFLINE = ['--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']  # nothing can come from another host
RUN_TIMEOUT, LESSON_BUDGET_MB, JOBS = 900, 800, 2  # s for one Run All (91: ~9 min); MB; notebooks at once
PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)'  # the notebook on show (JupyterLab hides the others)
OUTPUT = '.jp-OutputArea-output'
EMOJI = re.compile('[\u2600-\u27bf\U0001f300-\U0001faff]')  # empty boxes without an emoji font (Debian's Chromium)
NOT_KNOWN = 'does not look like a 3 or a 7'
# wrong answers typed into a lesson's exercise (the cell `my_answer = ...`), with the words each message must hold
EXERCISES = {
    '12_distances': [('((a_7-mean7).abs().mean(), (a_7-mean7).abs().mean())', 'your RMSE distance is the L1 distance'),
                     ('((a_7-mean7).abs().mean(), ((a_7-mean7)**2).mean())', 'one step is missing')],
    '14_accuracy': [('accuracy_3s', 'the accuracy of the 3s alone'),
                    ('(accuracy_3s+accuracy_7s)/2', "the book's average"),
                    ('100*(right_3s+right_7s)/(len(valid_3_tens)+len(valid_7_tens))', 'looks like a percentage'),
                    ('0.5', 'is too small')],
    '19_optimizer': [('len(dl)', 'mini-batches in one epoch'), ('len(dl)*20 + 1', 'is off.')],
}

class Stop(Exception): "a check failed (the message says which): stop this notebook"

def mb(n: int) -> str: return f'{n/1e6:,.0f} MB'

async def shot(el, path: Path):
    "A screenshot of a page or element; a failure is printed, not raised"
    try: await el.screenshot(path=str(path))
    except Exception as e: print(f'     (screenshot {path.name} failed: {str(e).splitlines()[0][:100]})')

async def poll(check, timeout: float, step=0.25):
    "Await `check()` until it is true (and returned) or `timeout` seconds have passed (None)"
    for _ in range(int(timeout / step)):
        if ok := await check(): return ok
        await asyncio.sleep(step)

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
        env = {'OMP_NUM_THREADS': '1', **os.environ, **KERNEL_ENV}  # two kernels on two cores
        with open(TEST/'server.log', 'w') as log:  # a session of its own: Ctrl-C reaches this script, which stops it
            self.proc = psutil.Popen(lab_command(work, extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def get(self, path: str):
        "The server's JSON answer at `path`, or None when it does not answer"
        req = urllib.request.Request(self.base + path, headers={'Authorization': f'token {self.token}'})
        with suppress(OSError, ValueError), urllib.request.urlopen(req, timeout=5) as r: return json.loads(r.read())

    def sessions(self, path: str) -> list[dict]:
        return [s for s in self.get('/api/sessions') or [] if s['path'] == path and s.get('kernel')]

    def wait_ready(self, timeout=90):
        for _ in range(int(timeout / 0.3)):
            if self.proc.poll() is not None:
                raise RuntimeError(f'JupyterLab exited ({self.proc.returncode}); see {TEST/"server.log"}')
            if self.get('/api/status'): return
            time.sleep(0.3)
        raise TimeoutError(f'JupyterLab did not answer within {timeout} s')

    def kernel_process(self, path: str):
        "The process of the notebook's kernel (its command line names the kernel's id), or None"
        ids = [s['kernel']['id'] for s in self.sessions(path)]
        for p in self.proc.children(recursive=True):
            with suppress(psutil.Error):
                if any(i in ' '.join(p.cmdline()) for i in ids): return p

    def stop(self) -> list[str]:
        "Stop the server and its kernels; returns those that did not stop on SIGTERM and were killed"
        procs = [self.proc, *(self.proc.children(recursive=True) if self.proc.is_running() else [])]
        for p in procs:
            with suppress(psutil.Error): p.terminate()
        alive = psutil.wait_procs(procs, timeout=15)[1]
        for p in alive:
            with suppress(psutil.Error): p.kill()
        return [f'pid {p.pid}' for p in alive]

async def sample_memory(server: Server, nb: str, peak: dict):
    "Every 0.5 s until cancelled: the peak RssAnon and VmHWM (bytes) of the notebook's kernel, into `peak`"
    proc = None
    while True:
        proc = proc or await asyncio.to_thread(server.kernel_process, nb)
        try:
            status = Path(f'/proc/{proc.pid}/status').read_text() if proc else ''
            for k in ('RssAnon', 'VmHWM') if proc else ():
                peak[k] = max(peak.get(k, 0), int(re.search(rf'^{k}:\s+(\d+) kB', status, re.M).group(1)) * 1024)
        except OSError: proc = None  # the kernel restarted or stopped
        await asyncio.sleep(0.5)

STATE_JS = f"""() => {{ const nb = document.querySelector('{PANEL}') || document;
  const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
  return {{status: nb.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status'),
          running: prompts.filter(t => t.includes('*')).length,
          executed: prompts.filter(t => /\\[\\d+\\]/.test(t)).length}}; }}"""
# each widget output's state; textContent, as JupyterLab skips rendering cells out of view (their innerText is empty)
WIDGETS_JS = f"""() => [...document.querySelector('{PANEL}').querySelectorAll(
  '{OUTPUT}:is(:not([data-mime-type]), [data-mime-type*="widget-view"])')].map(o => /Loading widget/.test(o.textContent)
  ? 'loading' : o.firstElementChild && !/Error displaying/.test(o.textContent) ? 'shown' : 'broken')"""
# scroll the notebook to its top; true once a cell is drawn in view
TOP_JS = f"""() => {{ document.querySelector('{PANEL} .jp-WindowedPanel-outer')?.scrollTo(0, 0);
  return [...document.querySelectorAll('{PANEL} .jp-Cell')].some(c => c.offsetHeight && c.getBoundingClientRect().top < 700); }}"""
# the parts of a canvas widget that stick out of its output area, and labels wrapped away from their numbers
FITS_JS = f"""(w) => {{ const right = w.closest('{OUTPUT}').getBoundingClientRect().right + 1;
  const lines = e => [...e.getClientRects()].filter(r => r.top >= e.getClientRects()[0].bottom - 1).length;
  return [...w.querySelectorAll('canvas, .mnist-draw-report > div, button')]
    .filter(e => e.getBoundingClientRect().right > right).map(e => 'cut off: ' + e.className)
    .concat([...w.querySelectorAll('.mnist-draw-pair, .mnist-draw-known')]
    .filter(e => lines(e)).map(e => 'wrapped: ' + e.textContent)); }}"""

async def menu(page, top: str, item: str):
    "Click a menu bar entry, then one of its items, by their labels"
    await page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(f'^{top}$')).click()
    await page.locator('.lm-Menu-content .lm-Menu-itemLabel', has_text=re.compile(f'^{item}')).first.click()

async def wait_state(page, pred, timeout: float, what=''):
    "Poll the notebook's state until `pred` holds twice in a row (a dialog, e.g. Select Kernel, gets its default)"
    steady = 0
    for _ in range(int(timeout / 0.2)):
        accept = page.locator('.jp-Dialog .jp-mod-accept')
        if await accept.count(): await accept.first.click()
        steady = steady + 1 if pred(await page.evaluate(STATE_JS)) else 0
        if steady >= 2: return True
        await asyncio.sleep(0.2)
    if what: raise Stop(f'{what} did not happen within {timeout} s')

async def check_sliders(page, stem: str, problems: list) -> int:
    "Move each slider one step with the keyboard: the picture of its output must change"
    handles = page.locator(PANEL).locator(f'{OUTPUT} :is(.widget-slider, .widget-hslider) .noUi-handle')
    for i in range(await handles.count()):
        h = handles.nth(i)
        await h.scroll_into_view_if_needed()
        area = h.locator('xpath=ancestor::div[contains(@class,"jp-Cell-outputArea")]')
        async def pictures(): return await area.locator('img').evaluate_all('imgs => imgs.map(i => i.src)')
        before, now = await pictures(), await h.get_attribute('aria-valuenow')
        await h.press('ArrowLeft' if now and now == await h.get_attribute('aria-valuemax') else 'ArrowRight')
        async def changed(): return (after := await pictures()) != before and after
        after = await poll(changed, 15) or await pictures()
        await asyncio.sleep(0.3)  # let the picture finish drawing before the screenshot
        await shot(area, SHOTS/f'{stem}-slider{i}-after.png')
        moved = await h.get_attribute('aria-valuenow')
        if moved == now: problems.append(f'slider {i}: the keyboard did not move it')
        elif not before or not after: problems.append(f'slider {i}: its output shows no picture')
        elif after == before: problems.append(f'slider {i}: moved from {now} to {moved}, its picture did not change')
    return await handles.count()

async def check_explorers(page, stem: str, problems: list) -> int:
    "Press each explorer's next and previous buttons: one image per press, a new picture, drawn at its natural size"
    nexts = page.locator(PANEL).locator(f'{OUTPUT} button', has_text=re.compile('^next$'))
    for i in range(await nexts.count()):
        box = nexts.nth(i).locator('xpath=ancestor::div[contains(@class,"widget-vbox")][1]')
        field, img = box.locator('.widget-text input').first, box.locator('img').first
        await box.scroll_into_view_if_needed()
        for label, step in (('next', 1), ('next', 1), ('previous', -1)):
            before, src = int(await field.input_value()), await img.get_attribute('src')
            await box.locator('button', has_text=re.compile(f'^{label}$')).click()
            async def moved(): return await img.get_attribute('src') != src and await field.input_value() != str(before)
            await poll(moved, 15)
            if (now := int(await field.input_value())) != before + step:
                problems.append(f'explorer {i}: {label} moved from image {before} to {now}')
            elif await img.get_attribute('src') == src:
                problems.append(f'explorer {i}: {label} did not change the picture')
        natural, shown = await img.evaluate('i => [i.naturalWidth, i.getBoundingClientRect().width]')
        if shown > natural + 1: problems.append(f'explorer {i}: its {natural}-px figure is drawn {shown:.0f} px wide')
        await shot(box, SHOTS/f'{stem}-explorer{i}.png')
    return await nexts.count()

async def draw(page, w, strokes: list, frame=None) -> bool:
    "Clear the canvas widget `w`, draw `strokes` with the mouse (awaiting `frame()` after each move); True if answered"
    await w.locator('button.mnist-draw-clear').click()
    el = await w.element_handle()
    await page.wait_for_function('(el) => el.dataset.strokes === "0"', arg=el, timeout=15_000)
    box = await w.locator('canvas.mnist-draw-pad').bounding_box()
    for stroke in strokes:
        points = [(box['x'] + x*box['width'], box['y'] + y*box['height']) for x, y in stroke]
        await page.mouse.move(*points[0])
        await page.mouse.down()
        for p in points[1:]:
            await page.mouse.move(*p, steps=6)
            if frame: await frame()
        await page.mouse.up()
    with suppress(Exception):
        answered = '(el) => el.dataset.strokes === String(el.dataset.sent)'
        return await page.wait_for_function(answered, arg=el, timeout=30_000)

async def record(page, w, strokes: list):
    "An animated WebP of the canvas widget `w` while `strokes` (a 3) are drawn and classified, saved to RECORDING"
    from PIL import Image
    frames = []
    await w.evaluate(f"(w) => w.closest('{OUTPUT}').style.maxWidth = '610px'")  # the widget, without empty space
    async def frame(): frames.append(Image.open(io.BytesIO(await w.screenshot())).convert('RGB'))
    await draw(page, w, strokes, frame)
    await asyncio.sleep(0.5)
    await frame()
    durations = [150]*(len(frames)-1) + [3000]
    frames[0].save(RECORDING, save_all=True, append_images=frames[1:], duration=durations, loop=0, quality=80)
    print(f'     recorded {len(frames)} frames of the canvas into {RECORDING.relative_to(ROOT)}')

async def check_canvases(page, stem: str, problems: list, notes: list, recording: str) -> int:
    "Draw five things on each canvas and read the answers; the last, longest answer must fit 370 px and full width"
    widgets = page.locator(PANEL).locator(f'{OUTPUT} .mnist-draw')
    if not await widgets.count(): return 0
    from mnist_basics.draw import EXAMPLE_STROKES as ex, MNIST_INK  # imports torch (slow): only once a canvas is shown
    def fractions(strokes, k=1, at=0.0): return [[(at + x*k/280, at + y*k/280) for x, y in s] for s in strokes]
    drawings = [('3', fractions(ex['3']), '3'), ('7', fractions(ex['7']), '7'),  # with the answer each must get
                ('corner 3', fractions(ex['3'], 1/4, 0.04), '3'),  # its 28x28 picture must have MNIST's ink
                ('dot', [[(0.5, 0.5)]], NOT_KNOWN), ('1', [[(0.53, 0.15), (0.48, 0.85)]], NOT_KNOWN)]
    for i in range(await widgets.count()):
        w = widgets.nth(i)
        await w.scroll_into_view_if_needed()
        for name, strokes, expected in drawings:
            if not await draw(page, w, strokes):
                problems.append(f'canvas {i}: no answer after drawing a {name}')
                continue
            await asyncio.sleep(0.3)
            await shot(w, SHOTS/f"{stem}-draw{i}-{name.replace(' ', '-')}.png")
            said = ' '.join(t.strip() for t in await w.locator('.mnist-draw-answer').all_inner_texts())
            ink = await w.evaluate('(el) => Number(el.dataset.ink || 0)')  # pixels > 0.5 in the 28x28 picture
            notes.append(f'drew a {name}: {said} ({ink} pixels > 0.5)')
            right = expected in said if expected == NOT_KNOWN else re.match(rf'nearest ideal: {expected}\b', said)
            if not right or 'I only know 3 and 7' not in said:
                problems.append(f'canvas {i}: drew a {name}, the answer was "{said}"')
            if not ink or name == 'corner 3' and not MNIST_INK[0] <= ink <= MNIST_INK[1]:
                problems.append(f"canvas {i}: the {name}'s 28x28 picture has {ink} pixels > 0.5, "
                                f"MNIST's 3s and 7s {MNIST_INK}")
        for width in ('370px', ''):
            await w.evaluate(f"(w) => w.closest('{OUTPUT}').style.maxWidth = '{width}'")
            await asyncio.sleep(0.3)
            if out := await w.evaluate(FITS_JS):
                problems.append(f"canvas {i} at {width or 'full width'}: " + ', '.join(out))
            if width: await shot(w, SHOTS/f'{stem}-draw{i}-370px.png')
        if recording == stem and i == 0: await record(page, w, drawings[0][1])
    return await widgets.count()

async def check_exercises(page, stem: str, problems: list, notes: list):
    "Type each wrong answer of EXERCISES[stem] into the exercise, run it and its check: each gets its own message"
    cells = page.locator(PANEL).locator('.jp-CodeCell')
    texts = await cells.locator('.jp-InputArea-editor').all_text_contents()
    if (i := next((k for k, t in enumerate(texts) if t.startswith('my_answer = ')), None)) is None:
        return problems.append('exercise: no cell starts with `my_answer = `')
    check, said = cells.nth(i + 1), []
    prompt = check.locator('.jp-InputArea-prompt')
    for answer, words in EXERCISES[stem]:
        before = await prompt.text_content()
        await cells.nth(i).locator('.cm-content').click()
        await page.keyboard.press('Control+a')
        await page.keyboard.type(f'my_answer = {answer}')
        await page.keyboard.press('Shift+Enter')  # runs the answer and selects the check...
        await page.keyboard.press('Shift+Enter')  # ...which runs too
        async def ran(): return (p := await prompt.text_content()) != before and '*' not in p
        await poll(ran, 30)
        said.append((await check.locator(OUTPUT).first.inner_text()).strip())
        if words not in said[-1]:
            problems.append(f'exercise: my_answer = {answer} got "{said[-1][:160]}", not "{words}"')
        mark, width = await check.locator(f'{OUTPUT} strong').first.evaluate('e => [e.textContent, e.offsetWidth]')
        if mark != 'Not yet' or width < 20: problems.append(f'exercise: the verdict mark is {mark!r}, {width} px wide')
    if len(set(said)) < len(said): problems.append('exercise: two different wrong answers got the same message')
    await shot(check, SHOTS/f'{stem}-verdict.png')
    notes += [f'typed a wrong answer: {s}' for s in said]

async def open_and_run(page, server: Server, nb: str, n_code: int):
    "File > Open from Path (no page load), then Run All Cells once the kernel is connected; wait for the last cell"
    await menu(page, 'File', 'Open from Path')
    await page.locator('.jp-Dialog input').fill(nb)
    await page.locator('.jp-Dialog input').press('Enter')
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current', has_text=nb).wait_for(timeout=60_000)
    await page.wait_for_selector(f'{PANEL} .jp-Notebook-ExecutionIndicator', timeout=60_000)
    side = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current')
    if await side.count(): await side.first.click()  # fold the file browser away: more notebook in the screenshots
    await wait_state(page, lambda s: s['status'] == 'idle', 60, 'the kernel starting')
    def connected():  # the page can say idle before the kernel is connected; Run All then runs only one cell
        return any(s['kernel'].get('execution_state') == 'idle' and s['kernel'].get('connections')
                   for s in server.sessions(nb))
    if not await poll(lambda: asyncio.to_thread(connected), 60): raise Stop('the kernel did not connect within 60 s')
    for _ in range(3):  # the menu item does nothing until the notebook is ready: try again
        await menu(page, 'Run', 'Run All Cells$')
        if not n_code or await wait_state(page, lambda s: s['running'] or s['executed'], 10): break
    else: raise Stop('Run All Cells did not start the cells')
    await wait_state(page, lambda s: s['status'] == 'idle' and not s['running'], RUN_TIMEOUT, 'Run All finishing')

def saved_problems(cells: list) -> list[str]:
    "Errors (outside a cell tagged raises-exception, which shows the book's failing line on purpose) and emoji marks"
    problems = []
    for i, c in enumerate(cells):
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error' and 'raises-exception' not in c.get('metadata', {}).get('tags', []):
                problems.append(f"cell {i}: {o.get('ename')}: {' | '.join(str(o.get('evalue')).splitlines())[:200]}")
            texts = [o.get('text', '')] + [v for k, v in o.get('data', {}).items() if k.startswith('text/')]
            if m := EMOJI.search(''.join(''.join(t) for t in texts)):
                problems.append(f'cell {i}: {m.group()!r} needs an emoji font to show')
    return problems

async def run_notebook(page, errors: list, server: Server, work: Path, nb: str, recording: str) -> tuple:
    "Open `nb`, run it and check it; prints PASS or FAIL with notes, returns (nb, problems, seconds)"
    t0, problems, notes, peak, stem, path = time.time(), [], [], {}, Path(nb).stem, work/nb
    errors.clear()
    sampler = asyncio.create_task(sample_memory(server, nb, peak))
    try:
        saved_at, cells = path.stat().st_mtime_ns, json.loads(path.read_text(encoding='utf-8'))['cells']
        n_code = sum(c['cell_type'] == 'code' and ''.join(c['source']).strip() != '' for c in cells)
        await open_and_run(page, server, nb, n_code)
        run_s = time.time() - t0
        async def views(): return 'loading' not in (v := await page.evaluate(WIDGETS_JS)) and v  # load after their cell
        shown = (await poll(views, 30, 0.5) or await page.evaluate(WIDGETS_JS)).count('shown')
        if await page.locator('.jp-toast-message, .Toastify', has_text=re.compile('news', re.I)).count():
            problems.append('the "Jupyter news" pop-up is shown')
        counts = {'sliders moved': await check_sliders(page, stem, problems),
                  'explorers stepped': await check_explorers(page, stem, problems),
                  'canvases drawn on': await check_canvases(page, stem, problems, notes, recording)}
        if stem in EXERCISES: await check_exercises(page, stem, problems, notes)
        await menu(page, 'File', 'Save Notebook$|Save$')
        async def saved(): return path.stat().st_mtime_ns != saved_at
        await poll(saved, 10, 0.2)
        await asyncio.sleep(0.3)
        cells = json.loads(path.read_text(encoding='utf-8'))['cells']
        problems += saved_problems(cells)
        executed = sum(c['cell_type'] == 'code' and c.get('execution_count') is not None for c in cells)
        if executed < n_code and not problems: problems.append(f'only {executed} of {n_code} code cells ran')
        n_widgets = sum('application/vnd.jupyter.widget-view+json' in o.get('data', {})
                        for c in cells for o in c.get('outputs', []))
        if shown < n_widgets: problems.append(f'{n_widgets} widget outputs, {shown} shown as widgets')
        async def at_top(): return await page.evaluate(TOP_JS)  # the windowed notebook redraws its cells after a while
        await poll(at_top, 5)
        await shot(page, SHOTS/f'{stem}.png')
        notes.insert(0, f'{executed} cells run in {run_s:.0f} s, widgets: {n_widgets}'
                     + ''.join(f', {k}: {n}' for k, n in counts.items() if n))
    except Stop as e: problems.append(str(e))
    except Exception as e: problems.append(f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
    finally:
        sampler.cancel()
        if problems: await shot(page, SHOTS/f'{stem}.png')
        with suppress(Exception):  # close the tab (the copy is saved, or failed anyway: do not keep it)
            await menu(page, 'File', 'Close Tab')
            await page.wait_for_timeout(300)
            if await (discard := page.locator('.jp-Dialog .jp-mod-warn')).count(): await discard.first.click()
        if not await poll(lambda: asyncio.to_thread(lambda: not server.sessions(nb)), 20):  # kernelShutdown setting
            problems.append('its kernel still runs 20 s after its tab was closed')
    if peak: notes.append(f"kernel peak: private (RssAnon) {mb(peak['RssAnon'])}, RSS (VmHWM) {mb(peak['VmHWM'])}")
    else: problems.append("the kernel's memory could not be read")
    if stem[:1] in '12' and peak.get('RssAnon', 0) > LESSON_BUDGET_MB * 1e6:
        problems.append(f"the kernel's private memory peaked at {mb(peak['RssAnon'])}, "
                        f"over the lesson budget of {LESSON_BUDGET_MB} MB")
    problems = list(dict.fromkeys(problems + errors))
    print(f"{'FAIL' if problems else 'PASS'} {nb} ({time.time()-t0:.0f} s; " + '; '.join(notes) + ')', flush=True)
    for p in problems: print(f'     {p}', flush=True)
    return nb, problems, time.time() - t0

async def drive(server: Server, work: Path, names: list[str], recording: str) -> list:
    "JOBS browser pages, each with JupyterLab loaded once, open the notebooks of `names` one after another"
    from playwright.async_api import async_playwright
    results, queue = [], list(names)
    async def worker(k: int):
        # a context of its own: JupyterLab tells its windows apart by name, and two at once in one context clash
        page, errors = await (await browser.new_context(viewport={'width': 1200, 'height': 800})).new_page(), []
        page.on('pageerror', lambda e: errors.append(f'uncaught exception in the page: {str(e)[:160]}'))
        page.on('requestfailed', lambda r: r.url.startswith((server.base, 'data:', 'blob:'))
                or errors.append(f'request to another host: {r.url[:160]}'))
        await page.goto(f'{server.base}/lab/workspaces/lab-test-{k}?reset&token={server.token}', timeout=90_000)
        await page.wait_for_selector('.lm-MenuBar-itemLabel', timeout=90_000)
        while queue: results.append(await run_notebook(page, errors, server, work, queue.pop(0), recording))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path('lab-test'), args=FLAGS + OFFLINE)
        try: await asyncio.gather(*(worker(k) for k in range(JOBS)))
        finally: await browser.close()
    return results

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', help='notebooks to run: names or parts of names (default: every notebook)')
    ap.add_argument('--record', action='store_const', const='14_accuracy', help="also record 14_accuracy's canvas")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: still stop the server and kernels
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    chromium_path('lab-test')
    git_before = git_state()
    for d in (TEST, SHOTS): shutil.rmtree(d, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    sync_copies(LESSONS, TEST/'nbs')  # makes TEST too
    names = sorted(p.name for p in LESSONS.glob('*.ipynb') if not args.names or any(a in p.name for a in args.names))
    times = json.loads(TIMES.read_text()) if TIMES.is_file() else {}
    names.sort(key=lambda n: -times.get(n, 60))  # the slowest first, so none is left running alone at the end
    results, server = [], None
    try:
        server = Server(TEST/'nbs')
        server.wait_ready()
        print(f'JupyterLab up at {server.base} in {time.perf_counter()-t0:.0f} s; '
              f'{len(names)} notebooks, {JOBS} at a time')
        results = asyncio.run(drive(server, TEST/'nbs', names, args.record))
        TIMES.write_text(json.dumps({**times, **{r[0]: round(r[2]) for r in results}}, indent=1))
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        results.append(('(JupyterLab)', [f'{type(e).__name__}: {e}'], 0))
        print(f'FAIL {results[-1][0]}: {results[-1][1][0]}')
    finally:
        if server:
            killed = server.stop()
            print('PASS server and kernels stopped' + (f" (killed: {', '.join(killed)})" if killed else ''))
    recorded = {f'{s} {RECORDING.relative_to(ROOT)}' for s in ('??', 'M')} if args.record else set()
    changed = sorted({line.strip() for line, _ in git_before ^ git_state()} - recorded)
    results.append(('git status unchanged', changed, 0))
    print(f"{'FAIL' if changed else 'PASS'} git status unchanged" + ''.join(f'\n     changed: {c}' for c in changed))
    nfail = sum(bool(r[1]) for r in results)
    print(f'screenshots in {SHOTS.relative_to(ROOT)}; {time.perf_counter()-t0:.0f} s')
    print(f'{len(results) - nfail} passed, {nfail} failed')
    sys.exit(1 if nfail else 0)

if __name__ == '__main__': main()

"""What site_test.py and lab_test.py share: headless Chromium (Debian's, or $CHROMIUM) with no network of its own."""
import os, shutil, sys
from pathlib import Path

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
         '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage']

def chromium_path(target: str) -> str:
    "The Chromium to drive; exits with what to do when there is none (`target`: the make target that installs it)"
    exe = os.environ.get('CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(exe).exists(): sys.exit(f"Chromium not found: `make {target}` installs it, or set CHROMIUM=/path")
    return exe

async def shot(el, path: Path):
    "A screenshot of a page or element; a failure is printed, not raised"
    try: await el.screenshot(path=str(path))
    except Exception as e: print(f'     (screenshot {path.name} failed: {str(e).splitlines()[0][:100]})')

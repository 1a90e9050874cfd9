"""Where the browser test leaves its screenshots, printed at the end of a run that wrote some."""

import time
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
SESSION_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    written = [path for path in SCREENSHOTS.glob("*.png") if path.stat().st_mtime >= SESSION_STARTED] \
        if SCREENSHOTS.exists() else []
    if written:
        terminalreporter.write_line(f"UI screenshots ({len(written)}): {SCREENSHOTS}")

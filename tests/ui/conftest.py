"""Where the browser test leaves its screenshots, printed at the end of the run."""

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
WRITTEN: list[Path] = []  # screenshots of this session's run


def pytest_terminal_summary(terminalreporter):
    if WRITTEN:
        terminalreporter.write_line(f"UI screenshots ({len(WRITTEN)}): {SCREENSHOTS}")

"""Where the browser test leaves its screenshots, printed at the end of the run."""

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"


def pytest_terminal_summary(terminalreporter):
    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.exists() else []
    if shots:
        terminalreporter.write_line(f"UI screenshots ({len(shots)}): {SCREENSHOTS}")

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flower-digits"

"""Per-step training metrics: a JSONL file a script can read, and a loss-curve PNG at the end."""

from __future__ import annotations

import json
from pathlib import Path

PARTS = ("loss", "lm_loss", "ot_loss", "ac_loss")


class MetricsLog:
    """Appends one JSON object per logged step to `path` (kept across resumes: a resumed run first
    drops the entries after the step it resumes from)."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None:
            path.write_text("")

    def write(self, entry: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def read(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def plot_losses(entries: list[dict], out: Path) -> None:
    """Total and each loss part against the step, one panel each (they differ by orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PARTS), figsize=(4 * len(PARTS), 3.2))
    for ax, part in zip(axes, PARTS):
        # OT/AC are 0 on batches without an image-audio pair or a box: those steps carry no value
        points = [(e["step"], e[part]) for e in entries if part in ("loss", "lm_loss") or e[part] > 0]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, alpha=0.35, label="per step")
            window = min(10, len(values))
            smooth = [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
                      for i in range(len(values))]
            ax.plot(steps, smooth, linewidth=2, label=f"mean of last {window}")
            ax.legend(fontsize=7)
        ax.set_title(part)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)

"""MeerkatBench: score a trained Meerkat on the five fine-grained tasks, against trivial baselines.

    python -m eval.run --checkpoint runs/x/final --data data/synth/test.jsonl --media-root data/synth --out reports/x
    python -m eval.compare reports/a reports/b
"""

TASKS = ("arig", "igatl", "avfc", "avqa", "avc")

"""Turn public audio-visual datasets (and a procedural world of our own) into Meerkat instruction JSONL.

    python -m instruct_data sources
    python -m instruct_data convert vggss --annotations vggss.json --media-root data/vggss --out vggss.jsonl
"""

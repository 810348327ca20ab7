#!/usr/bin/env bash
# GPU check of the training recipe on the tiny preset: DeepSpeed ZeRO-2 and ZeRO-3 runs of train/sft.py
# resumed from a checkpoint (losses compared with the uninterrupted run) and (with `qlora`) a 4-bit QLoRA
# run. Needs the wheels of shared/device/README.md installed on PYTHONPATH.
#   bash bench/gpu_train_check.sh deepspeed qlora
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu_train_check}
mkdir -p "$out"
common=(--config train/configs/tiny_synth.yaml synth_dir="$out/synth" synth_scenes=40 max_steps=4 save_every=2 mixed_precision=bf16)
for check in "${@:-deepspeed}"; do
case "$check" in
  deepspeed)  # ZeRO-2 and ZeRO-3 on this GPU: 8 steps straight, then the same run resumed from its step-4 checkpoint
    for stage in ${STAGES:-zero2 zero3}; do
      rm -rf "$out/$stage"  # a new run: the recipe refuses an output_dir holding an earlier run's checkpoints
      python3 -m accelerate.commands.launch --config_file deepspeed_configs/$stage.yaml train/sft.py "${common[@]}" \
        output_dir="$out/$stage" max_steps=8 save_every=4 keep_last=3
      cp "$out/$stage/metrics.jsonl" "$out/$stage/straight.jsonl"
      python3 -m accelerate.commands.launch --config_file deepspeed_configs/$stage.yaml train/sft.py "${common[@]}" \
        output_dir="$out/$stage" max_steps=8 save_every=4 keep_last=3 resume_from="$out/$stage/checkpoints/step_000004"
      python3 - "$out/$stage" $stage <<'PY'
import json, sys
straight, resumed = ([json.loads(line) for line in open(f"{sys.argv[1]}/{name}")] for name in ("straight.jsonl", "metrics.jsonl"))
print(sys.argv[2], "steps", [e["step"] for e in resumed], "loss", [round(e["loss"], 4) for e in resumed])
print(sys.argv[2], "resumed vs straight, largest |loss difference| over steps 5-8:",
      max(abs(a["loss"] - b["loss"]) for a, b in zip(straight[4:], resumed[4:])))
PY
    done
    ;;
  qlora)
    python3 - "$out/llama" <<'PY'
import sys
from transformers import LlamaConfig, LlamaForCausalLM
from meerkat.tokenizer import _train_sentencepiece
LlamaForCausalLM(LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
                             num_key_value_heads=8, vocab_size=512, max_position_embeddings=1024)).save_pretrained(sys.argv[1])
open(f"{sys.argv[1]}/tokenizer.model", "wb").write(_train_sentencepiece(512))
PY
    rm -rf "$out/qlora"
    python3 train/sft.py "${common[@]}" output_dir="$out/qlora" model.llm.path="$out/llama" model.llm.hf_config=null \
      model.llm.load_in_4bit=true model.llm.dtype=bfloat16
    python3 - "$out/qlora" <<'PY'
import json, sys
log = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl")]
print("qlora steps", [e["step"] for e in log], "loss", [round(e["loss"], 4) for e in log])
from meerkat import MeerkatModel
m = MeerkatModel.from_pretrained(f"{sys.argv[1]}/final")
print("qlora checkpoint reloads:", type(m).__name__, "4-bit layers:", sum(type(x).__name__ == "Linear4bit" for x in m.llm.modules()))
PY
    ;;
esac
done

#!/usr/bin/env bash
# GPU check of the training recipe: a DeepSpeed ZeRO-2 run and (with `qlora`) a 4-bit QLoRA run of
# train/sft.py on the tiny preset. Needs the wheels of shared/device/README.md installed on PYTHONPATH.
#   bash bench/gpu_train_check.sh deepspeed qlora
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu_train_check}
mkdir -p "$out"
common=(--config train/configs/tiny_synth.yaml synth_dir="$out/synth" synth_scenes=40 max_steps=4 save_every=2 mixed_precision=bf16)
for check in "${@:-deepspeed}"; do
case "$check" in
  deepspeed)
    python3 -m accelerate.commands.launch --config_file deepspeed_configs/zero2.yaml train/sft.py "${common[@]}" \
      output_dir="$out/zero2"
    python3 -m accelerate.commands.launch --config_file deepspeed_configs/zero2.yaml train/sft.py "${common[@]}" \
      output_dir="$out/zero2" max_steps=6 resume_from=latest
    python3 - "$out/zero2" <<'PY'
import json, sys
log = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl")]
print("zero2 steps", [e["step"] for e in log], "loss", [round(e["loss"], 4) for e in log])
PY
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

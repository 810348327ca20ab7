#!/usr/bin/env bash
# GPU check of the training recipe on the tiny preset: DeepSpeed ZeRO-2 and ZeRO-3 runs of train/sft.py
# resumed from a checkpoint (losses compared with the uninterrupted run) and (with `qlora`) a 4-bit QLoRA
# run. Needs the wheels of `bash bench/gpu_wheels.sh --deepspeed` installed on PYTHONPATH.
#   bash bench/gpu_train_check.sh deepspeed qlora
# Results are printed; runs, data and models stay in WORK (a folder under /tmp), not under the device's
# $OUT, which sends back only a few small files. A failed check says so and the next one still runs.
set -uo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
work=${WORK:-$(mktemp -d /tmp/gpu_train_check.XXXX)}
common=(--config train/configs/tiny_synth.yaml synth_dir="$work/synth" synth_scenes=40 max_steps=4 save_every=2 mixed_precision=bf16)

zero() {  # stage: 8 steps straight, then the same run resumed from its step-4 checkpoint
  local stage=$1 run=$work/$1
  rm -rf "$run"  # a new run: the recipe refuses an output_dir holding an earlier run's checkpoints
  python3 -m accelerate.commands.launch --config_file "deepspeed_configs/$stage.yaml" train/sft.py "${common[@]}" \
    output_dir="$run" max_steps=8 save_every=4 keep_last=3
  cp "$run/metrics.jsonl" "$run/straight.jsonl"
  python3 -m accelerate.commands.launch --config_file "deepspeed_configs/$stage.yaml" train/sft.py "${common[@]}" \
    output_dir="$run" max_steps=8 save_every=4 keep_last=3 resume_from="$run/checkpoints/step_000004"
  python3 - "$run" "$stage" <<'PY'
import json, sys
straight, resumed = ([json.loads(line) for line in open(f"{sys.argv[1]}/{name}")] for name in ("straight.jsonl", "metrics.jsonl"))
print(sys.argv[2], "steps", [e["step"] for e in resumed], "loss", [round(e["loss"], 4) for e in resumed])
print(sys.argv[2], "resumed vs straight, largest |loss difference| over steps 5-8:",
      max(abs(a["loss"] - b["loss"]) for a, b in zip(straight[4:], resumed[4:])))
PY
}

qlora() {  # a 4-bit NF4 Llama of 4 layers x 512 from a local folder, trained and reloaded
  python3 - "$work/llama" <<'PY'
import sys
from transformers import LlamaConfig, LlamaForCausalLM
from meerkat.tokenizer import _train_sentencepiece
LlamaForCausalLM(LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
                             num_key_value_heads=8, vocab_size=512, max_position_embeddings=1024)).save_pretrained(sys.argv[1])
open(f"{sys.argv[1]}/tokenizer.model", "wb").write(_train_sentencepiece(512))
PY
  rm -rf "$work/qlora"
  python3 train/sft.py "${common[@]}" output_dir="$work/qlora" model.llm.path="$work/llama" model.llm.hf_config=null \
    model.llm.load_in_4bit=true model.llm.dtype=bfloat16
  python3 - "$work/qlora" <<'PY'
import json, sys
log = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl")]
print("qlora steps", [e["step"] for e in log], "loss", [round(e["loss"], 4) for e in log])
from meerkat import MeerkatModel
m = MeerkatModel.from_pretrained(f"{sys.argv[1]}/final")
print("qlora checkpoint reloads:", type(m).__name__, "4-bit layers:", sum(type(x).__name__ == "Linear4bit" for x in m.llm.modules()))
PY
}

try() {  # name, command...: in a subshell that stops at its first failure, reported; the next check runs
  local name=$1
  shift
  ( set -e; "$@" )
  local rc=$?
  ((rc == 0)) || echo "== $name FAILED (exit $rc)"
}

for check in "${@:-deepspeed}"; do
  case "$check" in
    deepspeed) for stage in ${STAGES:-zero2 zero3}; do try "$stage" zero "$stage"; done ;;
    qlora) try qlora qlora ;;
    *) echo "unknown check $check (deepspeed, qlora)" >&2; exit 2 ;;
  esac
done

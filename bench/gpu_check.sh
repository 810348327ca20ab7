#!/usr/bin/env bash
# One GPU session's checks, each bounded in time and logged to $OUT, so one failure does not lose the rest:
#   1. DeepSpeed ZeRO-2 / ZeRO-3 runs of train/sft.py resumed from a checkpoint (bench/gpu_train_check.sh)
#   2. decoding at Llama-2-7B shapes: plain generate vs meerkat's StaticDecoder (bench/decode.py)
#   3. the training step at Llama-2-7B shapes: transformers + peft vs the Meerkat step (bench/train_step.py),
#      on full rows and on uneven samples padded vs packed (--uneven)
# Needs the wheels of shared/device/README.md on PYTHONPATH (make_wheelhouse.sh core, plus deepspeed's
# pydantic, pydantic-core, annotated-types, typing-inspection, py-cpuinfo, einops, msgpack, ninja).
set -uo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$out/gpu.txt"
section() {  # name, seconds, command...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - start)) s"
  grep -v -i -E "warn|^\s*$|it/s\]|scene/s\]|row/s\]|examples/s\]" "$out/$name.log" | tail -n 14
}
OUT="$out/train_check" section deepspeed ${DS_LIMIT:-150} bash bench/gpu_train_check.sh deepspeed
section decode 220 python3 bench/decode.py --shapes 7b --batches 1,32 --new_tokens 64 --repeats 2
section train_step 110 python3 bench/train_step.py --shapes 7b --batch 4 --seq 1024 --steps 5 --warmup 2
section train_step_uneven 110 python3 bench/train_step.py --shapes 7b --batch 8 --seq 1024 --steps 5 --warmup 2 --uneven
# Not run here, as the sections above fill one 10-minute call: the step with the LLM decoder compiled
# (`compile: true` in a recipe), as a second call of its own:
#   python3 bench/train_step.py --shapes 7b --batch 4 --seq 1024 --steps 5 --warmup 3 --compile
#   python3 bench/tower_dtype.py --batch 32     # bf16 vs float32 towers (the steps above run them in bf16 now)

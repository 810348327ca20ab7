#!/usr/bin/env bash
# A GPU session's checks, each bounded in time and logged to $OUT, so one failure does not lose the rest.
#   bash bench/gpu_check.sh [SECTION ...]      (default: qlora decode train_step — one call of at most 10 minutes)
# Sections:
#   qlora       7B QLoRA step (4-bit NF4, both towers, checkpointing) at batch 1 × 1024: peak memory
#   uneven      7B step on samples of 256–1024 tokens: transformers + peft padded vs Meerkat padded and packed
#   train_step  7B step on full rows, batch 4 × 1024: transformers + peft vs the Meerkat step, and the 15
#               operators the Meerkat step spends most time in
#   decode      decoding at 7B shapes, batch 1: plain generate vs meerkat's StaticDecoder, with and without
#               tune_gemv
#   decode32    the same at batch 32
#   compile     the train_step rows plus (d), the LLM decoder torch.compiled (on 2026-11-28, with the
#               whole decoder compiled, its warm-up did not end within 4.5 min; it now compiles regions)
#   compiletime cold compile and step time at 7B shapes, 2 and 8 layers: eager, whole decoder, regions
#   towers      bf16 vs float32 frozen towers (bench/tower_dtype.py)
#   deepspeed   ZeRO-2 / ZeRO-3 runs of train/sft.py resumed from a checkpoint (bench/gpu_train_check.sh;
#               needs the wheels of `bench/gpu_wheels.sh --deepspeed`)
# Needs the wheels of bench/gpu_wheels.sh installed on PYTHONPATH (its last line says how).
set -uo pipefail
# POT imports JAX where it is installed (the machine has it), and JAX grabs most of the GPU at import
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 POT_BACKEND_DISABLE_JAX=1 POT_BACKEND_DISABLE_TENSORFLOW=1
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$out/gpu.txt"
section() {  # name, seconds, command...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - start)) s"
  grep -v -i -E "warn|^\s*$|it/s\]|scene/s\]|row/s\]|examples/s\]|shards|Loading weights|profiler_st" "$out/$name.log" | tail -n 30
}
shapes=${SHAPES:-7b}  # SHAPES=tiny tries the plumbing on a CPU
step="python3 bench/train_step.py --shapes $shapes --steps 5 --warmup 2"
for name in ${*:-qlora decode train_step}; do
    case $name in
    qlora)      section qlora 180 $step --qlora --checkpointing --batch 1 --seq 1024 ;;
    uneven)     section uneven 120 $step --batch 8 --seq 1024 --uneven ;;
    train_step) section train_step 120 $step --batch 4 --seq 1024 --profile 15 ;;
    decode)     section decode 270 python3 bench/decode.py --shapes $shapes --batches 1 --new_tokens 64 --repeats 2 --no_hf_static ;;
    decode32)   section decode32 240 python3 bench/decode.py --shapes $shapes --batches 32 --new_tokens 64 --repeats 2 ;;
    compile)    section compile 300 $step --batch 4 --seq 1024 --warmup 3 --compile ;;
    compiletime) section compiletime 400 python3 bench/compile_time.py --shapes $shapes --layers 2,8 --batch 4 --seq 1024 ;;
    towers)     section towers 90 python3 bench/tower_dtype.py --batch 32 ;;
    deepspeed)  OUT="$out/train_check" section deepspeed 150 bash bench/gpu_train_check.sh deepspeed ;;
    *) echo "unknown section $name" >&2; exit 2 ;;
    esac
done

#!/usr/bin/env bash
# A GPU session's checks, each bounded in time and logged to $OUT, so one failure does not lose the rest.
#   bash bench/gpu_check.sh [SECTION ...]      (default: qlora decode train_step — one call of at most 10 minutes)
# Every section ends by DEADLINE seconds after the start (default 540, under the device's 600 s per call,
# with room for the set-up); a section that would start with less than 30 s left is skipped and says so.
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
deadline=${DEADLINE:-540}
section() {  # name, seconds, command...
  local name=$1 limit=$2 start=$SECONDS left=$((deadline - SECONDS))
  shift 2
  if ((left < 30)); then
    echo "== $name: skipped, ${left} s left before the ${deadline} s deadline"
    return
  fi
  ((limit > left)) && limit=$left
  echo "== $name (at most $limit s): $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - start)) s"
  grep -v -i -E "warn|^\s*$|it/s\]|scene/s\]|row/s\]|examples/s\]|shards|Loading weights|profiler_st" "$out/$name.log" | tail -n 30
}
shapes=${SHAPES:-7b}  # SHAPES=tiny tries the plumbing on a CPU
step="python3 bench/train_step.py --shapes $shapes --steps 5 --warmup 2"
sections=${*:-qlora decode train_step}
for name in $sections; do  # a typo must not cost the sections before it
    case $name in
    qlora|uneven|train_step|decode|decode32|compile|compiletime|towers|deepspeed) ;;
    *) echo "unknown section $name; sections: qlora uneven train_step decode decode32 compile compiletime towers deepspeed" >&2; exit 2 ;;
    esac
done
for name in $sections; do
    case $name in
    qlora)      section qlora 180 $step --qlora --checkpointing --batch 1 --seq 1024 ;;
    uneven)     section uneven 120 $step --batch 8 --seq 1024 --uneven ;;
    train_step) section train_step 120 $step --batch 4 --seq 1024 --profile 15 ;;
    decode)     section decode 270 python3 bench/decode.py --shapes $shapes --batches 1 --new_tokens 64 --repeats 2 --no_hf_static ;;
    decode32)   section decode32 240 python3 bench/decode.py --shapes $shapes --batches 32 --new_tokens 64 --repeats 2 ;;
    compile)    section compile 300 $step --batch 4 --seq 1024 --warmup 3 --compile ;;
    compiletime) section compiletime 400 python3 bench/compile_time.py --shapes $shapes --layers 2,8 --batch 4 --seq 1024 ;;
    towers)     section towers 90 python3 bench/tower_dtype.py --batch 32 ;;
    deepspeed)  section deepspeed 150 bash bench/gpu_train_check.sh deepspeed ;;
    esac
done

#!/usr/bin/env bash
# The papers' experiments and speed figures that do not fit a 2-core CPU, as one script for one GPU.
#
#   LLFER_DATA_DIR=<folder with fer2013.zip and ferplus.zip> bash benchmarks/gpu_papers.sh [PART ...]
#   GPU_PAPERS_DRY=1 bash benchmarks/gpu_papers.sh [PART ...]   # print the commands only (tests/test_experiments.py)
#
# Run it in a clone of the repository with the project installed (`make install`; torch with CUDA), on a
# machine with one NVIDIA GPU.  Each PART is one `dvc exp run` of a named experiment (conf/experiment/) with
# GPU-sized budgets given as `-S` overrides (so `dvc exp show` lists them beside the CPU runs), or one
# benchmark; the figures land in benchmarks/results/gpu/ and `dvc exp show` at the end.
#
# Parts (default: speed minixception efc20 resnet50, sized for about 10 minutes of one H200):
#   speed         bench_train_loop.py on the whole FER2013 train split (llfer loop vs a DataLoader loop,
#                 mini-Xception, EFC net, ResNet50) and bench_enhancers.py (cpu and paper presets)  ~2 min
#   minixception  [mini-xception-fer] Table 3, clean input, 60 epochs                                 ~2.5 min
#   efc20         [efc-lowres] Table 3 at 20 px (network input 32 px), 100 epochs                     ~3 min
#   resnet50      [mirnet-fer] Tables 5-6, clean / dark_pil / MIRNet-enhanced, 30 epochs, MIRNet's
#                 paper preset trained for 2,000 steps                                                 ~4 min
#   minixception-all, efc-all   every input / every size of those tables (another ~8 / ~8 min)
#   enhancers     every enhancer's paper preset on FER2013 for 2,000 steps, PSNR/SSIM/NIQE and the
#                 FER effect ([mirnet-fer] Table 2)                                                      ~6 min
#   joint         [ll-fer] on FER+ and FER2013 dark_gamma: ResNet-18 30 epochs, LLENet and Zero-DCE,
#                 2,000 joint steps (the paper's count)                                                  ~8 min
# The times are estimates, not measurements: no GPU has been lent to this project's sessions yet.  They
# come from the training FLOPs per 48 px image (torch.utils.flop_counter: mini-Xception 0.078 GFLOP,
# EFC net at 20 px of network input 0.037, at 32 px 0.073, ResNet-18 0.58, ResNet50 1.34) at an assumed 5-10 % of an H200's bf16 peak for
# convolutions this small (launch- and memory-bound), plus ~1 min of prepare / degrade / quality / CV
# stages per experiment.  Record the measured times next to them (README, "The papers' experiments").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLFER_DATA_DIR:?set LLFER_DATA_DIR to the folder that holds fer2013.zip and ferplus.zip}"
DRY=${GPU_PAPERS_DRY:-}
for f in fer2013.zip ferplus.zip; do
  [ -f "$LLFER_DATA_DIR/$f" ] || { echo "gpu_papers: $LLFER_DATA_DIR/$f not found" >&2; exit 2; }
  [ -n "$DRY" ] || [ -e "data/raw/$f" ] || { mkdir -p data/raw && ln -s "$LLFER_DATA_DIR/$f" "data/raw/$f"; }
done
[ -n "$DRY" ] || python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_papers: torch sees no GPU')"
export DVC_NO_ANALYTICS=1
RES=benchmarks/results/gpu
[ -n "$DRY" ] || mkdir -p "$RES"
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(speed minixception efc20 resnet50)

# one named experiment with GPU budgets; the wall time of each goes to $RES/times.tsv
exp() {
  local name=$1; shift
  local t0=$SECONDS
  if [ -n "$DRY" ]; then printf '%q ' dvc exp run -n "$name" -S "+experiment=$name" "$@"; echo; return; fi
  dvc exp run -n "$name" -S "+experiment=$name" "$@"
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >> "$RES/times.tsv"
}
# a learned enhancer's paper preset with a GPU budget (patience: validations without a PSNR gain)
gpu_learned='model: {preset: paper}, init: null, train: {steps: 2000, batch_size: 64, patch: 0, optimizer: adam, '\
'lr: 0.0002, weight_decay: 0.0, schedule: cosine, warmup_steps: 100, grad_clip: 0.0, eval_every: 100, patience: 5, '\
'max_pairs: null, max_val: 1024}'

for part in "${parts[@]}"; do
  echo "== $part"
  case $part in
    speed)
      [ -z "$DRY" ] || { echo "python benchmarks/bench_train_loop.py ... / bench_enhancers.py ..."; continue; }
      python benchmarks/bench_train_loop.py --device cuda --backbones mini_xception,efcnet,resnet50 --images 0 \
        --workers 8 --out "$RES/train_loop.json"
      python benchmarks/bench_enhancers.py --device cuda --variants cpu paper --threads 1 --train-steps 20 \
        --infer-images 4096 --out "$RES/enhancers_speed.json" ;;
    minixception)
      exp fer2013-minixception -S 'fer.inputs=[clean]' -S fer.train.epochs=60 ;;
    minixception-all)
      exp fer2013-minixception -S fer.train.epochs=60 ;;
    efc20)
      exp ferplus-efc-20px -S fer.train.epochs=100 ;;
    efc-all)
      for px in 20 15 10 8 5; do exp "ferplus-efc-${px}px" -S fer.train.epochs=100; done ;;
    resnet50)
      exp fer2013-resnet50 -S fer.train.epochs=30 -S "learned.mirnet={$gpu_learned}" ;;
    enhancers)
      exp fer2013-enhancers -S fer.train.epochs=60 -S "learned.mirnet={$gpu_learned}" \
        -S "learned.retinexnet={$gpu_learned}" -S "learned.llenet={$gpu_learned}" \
        -S "learned.zerodce={${gpu_learned/patience: 5/patience: 0}}" ;;
    joint)
      for d in ferplus-joint fer2013-joint; do
        exp "$d" -S fer.train.epochs=30 -S joint.train.steps=2000 -S joint.train.eval_every=250 \
          -S "learned.llenet={$gpu_learned}" -S "learned.zerodce={${gpu_learned/patience: 5/patience: 0}}"
      done ;;
    *) echo "gpu_papers: unknown part '$part' (speed, minixception, minixception-all, efc20, efc-all, resnet50, enhancers, joint)" >&2
       exit 2 ;;
  esac
done
[ -z "$DRY" ] || exit 0
dvc exp show --csv > "$RES/exp_show.csv"
echo "results: $RES (times.tsv: seconds per experiment; exp_show.csv: dvc exp show)"

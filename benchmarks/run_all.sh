#!/usr/bin/env bash
# Runs every benchmark one after the other and keeps each one's raw output in benchmarks/results/.
#   benchmarks/run_all.sh [name ...]     names: preprocess training serving lambda synth memory tests image
# Needs: the peer installed once (../shared/bench/peer_serving/setup.sh /tmp/peer) for `serving`;
# libtcmalloc-minimal4 (apt) for the tcmalloc rows of `training` and `memory` (skipped without it).
# Run on a machine with nothing else busy: look at `uptime` first; each result records the load.
set -euo pipefail
cd "$(dirname "$0")/.."
export NLTK_DATA=${NLTK_DATA:-$(cd .. && pwd)/shared/nltk_data}
export PYTHONUNBUFFERED=1
PY=.venv/bin/python
TC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
mkdir -p benchmarks/results
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(preprocess training serving lambda synth memory)
for name in "${names[@]}"; do
  case $name in
    preprocess) cmd=($PY benchmarks/bench_preprocess.py --profile) ;;
    training)   cmd=($PY benchmarks/bench_training.py) ;;
    serving)    cmd=($PY benchmarks/bench_serving.py) ;;
    lambda)     cmd=($PY benchmarks/bench_lambda.py) ;;
    synth)      cmd=($PY benchmarks/bench_synth.py) ;;
    memory)     if [ -f $TC ]; then cmd=($PY benchmarks/bench_memory.py --tcmalloc $TC); else cmd=($PY benchmarks/bench_memory.py); fi ;;
    tests)      cmd=($PY benchmarks/bench_tests.py) ;;
    image)      cmd=($PY benchmarks/bench_image.py) ;;
    *) echo "unknown benchmark $name" >&2; exit 2 ;;
  esac
  echo "== $name: ${cmd[*]}"
  "${cmd[@]}" 2>&1 | tee "benchmarks/results/$name.txt"
done

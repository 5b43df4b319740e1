#!/usr/bin/env bash
# Peak resident memory per role: the dealer, P0 and P1 as three processes over TCP + TLS on
# loopback, one private inference of a checkpoint on a text of N words; prints each process's
# JSON line (`peak_rss_bytes` per party) and the dealer's peak from /usr/bin/time.
#   scripts/memory-per-role.sh MODEL_DIR WORDS [PRESET] [WEIGHTS]
set -euo pipefail
model=$1 words=$2 preset=${3:-gelu+softmax} weights=${4:-owner}
bin=${MPCFORMER:-target/release/mpcformer}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
text=$(python3 -c "import sys; w='private inference keeps the model and the text secret'.split(); print(' '.join(w[i % len(w)] for i in range(int(sys.argv[1]))))" "$words")
"$bin" certs --out "$dir/certs" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dealer=127.0.0.1:$(port) peer=127.0.0.1:$(port)
common=(--certs "$dir/certs" --model "$model" --preset "$preset" --weights "$weights")
/usr/bin/time -f '{"role":"dealer","peak_rss_bytes":%M000}' "$bin" dealer --listen "$dealer" --certs "$dir/certs" --sessions 1 >/dev/null 2>"$dir/dealer.time" &
"$bin" party --role p0 --dealer "$dealer" --peer "$peer" "${common[@]}" >"$dir/p0.json" &
p0=$!
"$bin" party --role p1 --dealer "$dealer" --peer "$peer" --text "$text" "${common[@]}" >"$dir/p1.json"
wait
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
for role in ("p0", "p1"):
    # The report is the last line (P0 prints a "listening" event first).
    line = [json.loads(l) for l in open(f"{d}/{role}.json") if l.strip()][-1]
    line.pop("output", None)
    print(json.dumps(line))
print(open(f"{d}/dealer.time").read().strip().splitlines()[-1])
PY

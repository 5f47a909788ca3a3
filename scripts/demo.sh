#!/usr/bin/env bash
# make demo: what the codec does, shown with the real encoder and decoder. The gateway
# itself (XDP/AF_XDP engine, two sites in namespaces, TCP over a lossy WAN) joins this demo
# when the engine lands (docs/roadmap.md).
set -euo pipefail
cd "$(dirname "$0")/.."
m() { node dist/src/cli/maelstrom.js "$@"; }

echo "== Layered interleaving at (8,3) with interleaves 1,10,100 over a 1% iid lossy link"
m model --r 8 --c 3 --interleaves 1,10,100 --loss 0.01 --packets 1000000
echo
echo "== The same loss in bursts of 20 packets on average (Gilbert-Elliott)"
m model --loss 0.01 --burst-length 20 --packets 500000
echo
echo "== More repairs for bursty links: (8,4) with interleaves 1,10,100,1000"
m model --r 8 --interleaves 1,10,100,1000 --loss 0.01 --burst-length 20 --packets 500000
echo
echo "== Codec throughput on one core"
m bench codec --seconds 0.3

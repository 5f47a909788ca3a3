#!/usr/bin/env bash
# make demo: the gateway at work (two sites in namespaces, TCP over a long lossy WAN with and
# without Maelstrom), then the redundancy model and the codec's speed.
set -euo pipefail
cd "$(dirname "$0")/.."
m() { node dist/src/cli/maelstrom.js "$@"; }

echo "== Maelstrom gateways on a 100 Mbit/s, 50 ms RTT, 1% lossy WAN"
node dist/src/lab/demo.js 2> >(grep -v "xdp_pass\|xdp-dispatcher\|dispatcher program\|Falling back\|ulimit -l" >&2)
echo
echo "== How safe is (8,3) at 1% loss? Closed form against the real codec"
m model --r 8 --c 3 --interleaves 1,10,100 --loss 0.01 --packets 1000000
echo
echo "== The same loss in bursts of 20 packets, and (8,4) with interleaves 1,10,100,1000 for it"
m model --loss 0.01 --burst-length 20 --packets 500000
m model --r 8 --interleaves 1,10,100,1000 --loss 0.01 --burst-length 20 --packets 500000
echo
echo "== Codec throughput on one core"
m bench codec --seconds 0.3

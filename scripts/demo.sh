#!/usr/bin/env bash
# A first real trace: a UDP datagram dies at a closed port in a network
# namespace, and netwhy shows its path and the drop reason. Cleans up always.
set -euo pipefail
cd "$(dirname "$0")/.."
A=nw-demo-a B=nw-demo-b
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$A"; ip netns add "$B"
ip link add demo-a netns "$A" type veth peer name demo-b netns "$B"
ip -n "$A" addr add 10.199.99.1/24 dev demo-a; ip -n "$B" addr add 10.199.99.2/24 dev demo-b
ip -n "$A" link set demo-a up; ip -n "$B" link set demo-b up
node dist/cli.js trace host 10.199.99.2 and udp --duration 3 &
tracer=$!
sleep 1.5
ip netns exec "$A" bash -c 'echo hello > /dev/udp/10.199.99.2/9'
wait "$tracer"

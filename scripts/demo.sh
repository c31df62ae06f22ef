#!/usr/bin/env bash
# The vxswitch demo: two hosts (network namespaces on a veth/bridge
# underlay), a vxswitch daemon on each, an overlay network, a web server
# in a container on host 1 and a client in a container on host 2 that
# fetches its page across the overlay.
#
# By default the hosts share a cluster store: an etcd member in a third
# namespace on the underlay. The network is created once, addresses come
# from the store, no peer is typed, and the client finds the server by
# name. With --static the hosts are configured by hand instead (peer add,
# --ip), as without a store.
#
# Everything it makes carries the prefix vxd<PID>- and is removed at the
# end, also on failure or Ctrl-C. Run as root.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib.sh
MODE=store
case "${1:-}" in
--static) MODE=static ;;
"") ;;
*)
	echo "usage: $0 [--static]" >&2
	exit 2
	;;
esac
need_root
need_go
cmds=(ip:iproute2 nsenter:util-linux curl:curl python3:python3)
[ $MODE = store ] && cmds+=(etcd:etcd-server)
need_cmds "${cmds[@]}"
echo "building vxswitch"
BIN=./bin/vxswitch
./scripts/build.sh "$BIN"
# Unique per run, so that two demos never touch each other's namespaces;
# short, so that "$P-u1" fits an interface name (15 characters).
P=vxd$$
WORK=$(mktemp -d /tmp/vxdemo.XXXXXX)
PIDS=()

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
	set +e
	step "cleaning up"
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	# The daemons leave their networks' namespaces for a restart; remove them.
	for ns in "$WORK"/run-*/netns/*; do [ -e "$ns" ] && umount -l "$ns" 2>/dev/null; done
	for ns in $P-h1 $P-h2 $P-etcd $P-lan $P-web $P-client; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	rm -rf "$WORK"
	echo "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of earlier demos that were killed before they could clean up:
# namespaces whose demo process is gone.
for ns in $(ip netns list | awk '{print $1}' | grep -E '^vxd[0-9]+-' || true); do
	pid=${ns#vxd}
	pid=${pid%%-*}
	if ! kill -0 "$pid" 2>/dev/null; then
		ip netns del "$ns" 2>/dev/null || true
		rm -rf "/etc/netns/$ns"
	fi
done

if [ $MODE = store ]; then
	step "two hosts and an etcd member on one underlay LAN (198.18.0.1, 198.18.0.2; etcd at 198.18.0.100)"
	run ip netns add $P-lan
	run ip -n $P-lan link add br0 type bridge
	ip -n $P-lan link set br0 up
	for h in h1:1 h2:2 etcd:100; do
		name=${h%%:*} idx=${h#*:}
		run ip netns add $P-$name
		run ip link add $P-u$idx netns $P-$name type veth peer name p$idx netns $P-lan
		ip -n $P-lan link set p$idx master br0 up
		run ip -n $P-$name addr add 198.18.0.$idx/24 dev $P-u$idx
		ip -n $P-$name link set lo up
		ip -n $P-$name link set $P-u$idx up
	done

	step "etcd, the cluster store, in its own namespace"
	echo "$ nsenter --net=/run/netns/$P-etcd etcd --listen-client-urls http://198.18.0.100:2379 ... &"
	nsenter --net=/run/netns/$P-etcd etcd --name demo --data-dir "$WORK/etcd" \
		--listen-client-urls http://198.18.0.100:2379 --advertise-client-urls http://198.18.0.100:2379 \
		--listen-peer-urls http://198.18.0.100:2380 --initial-advertise-peer-urls http://198.18.0.100:2380 \
		--initial-cluster demo=http://198.18.0.100:2380 >"$WORK/etcd.log" 2>&1 &
	PIDS+=($!)
	STORE=(--store etcd://198.18.0.100:2379)
else
	step "two hosts joined by a veth underlay (198.18.0.1 and 198.18.0.2)"
	run ip netns add $P-h1
	run ip netns add $P-h2
	run ip link add $P-u1 netns $P-h1 type veth peer name $P-u2 netns $P-h2
	run ip -n $P-h1 addr add 198.18.0.1/24 dev $P-u1
	run ip -n $P-h2 addr add 198.18.0.2/24 dev $P-u2
	for h in 1 2; do ip -n $P-h$h link set lo up; ip -n $P-h$h link set $P-u$h up; done
	STORE=()
fi

step "a vxswitch daemon on each host"
for h in 1 2; do
	mkdir -p "$WORK/run-h$h" "$WORK/state-h$h"
	echo "$ nsenter --net=/run/netns/$P-h$h $BIN daemon --vtep 198.18.0.$h ${STORE[*]} --run-dir $WORK/run-h$h --state-dir $WORK/state-h$h &"
	nsenter --net=/run/netns/$P-h$h "$BIN" daemon --vtep 198.18.0.$h "${STORE[@]}" \
		--run-dir "$WORK/run-h$h" --state-dir "$WORK/state-h$h" >"$WORK/daemon-h$h.log" 2>&1 &
	PIDS+=($!)
done
vx1() { run "$BIN" --socket "$WORK/run-h1/vxswitch.sock" "$@"; }
vx2() { run "$BIN" --socket "$WORK/run-h2/vxswitch.sock" "$@"; }
for h in 1 2; do
	for _ in $(seq 100); do [ -S "$WORK/run-h$h/vxswitch.sock" ] && break; sleep 0.1; done
	[ -S "$WORK/run-h$h/vxswitch.sock" ] || { cat "$WORK/daemon-h$h.log"; exit 1; }
done

run ip netns add $P-web
run ip netns add $P-client
mkdir -p "$WORK/www"
echo "<h1>Hello from the web container on host 1, over vxswitch</h1>" >"$WORK/www/index.html"
if [ $MODE = store ]; then
	step "one network for the cluster, created once, on host 1: VNI and gateway from the store"
	for _ in $(seq 100); do "$BIN" --socket "$WORK/run-h1/vxswitch.sock" host ls 2>/dev/null | grep -q alive && break; sleep 0.1; done
	vx1 network create web-net --subnet 10.0.0.0/24
	vx2 network ls

	step "a web server container on host 1 named web, a client container on host 2: addresses from the store, no peer typed"
	vx1 network attach web-net --netns $P-web --name web
	vx2 network attach web-net --netns $P-client
	SERVER=web
else
	step "one overlay network on both hosts (VNI 256, 10.0.0.0/24), each host the other's peer"
	vx1 network create demo --vni 256 --subnet 10.0.0.0/24 --gateway 10.0.0.1
	vx2 network create demo --vni 256 --subnet 10.0.0.0/24 --gateway 10.0.0.1
	vx1 peer add demo 198.18.0.2
	vx2 peer add demo 198.18.0.1

	step "a web server container on host 1, a client container on host 2"
	vx1 network attach demo --netns $P-web --ip 10.0.0.2
	vx2 network attach demo --netns $P-client --ip 10.0.0.3
	SERVER=10.0.0.2
fi
echo "$ ip netns exec $P-web python3 -m http.server 80 &"
ip netns exec $P-web python3 -m http.server 80 --bind 10.0.0.2 --directory "$WORK/www" >"$WORK/web.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do ip netns exec $P-web ss -ltn 2>/dev/null | grep -q '10.0.0.2:80 ' && break; sleep 0.1; done

step "the client fetches the page across the overlay"
if [ $MODE = store ]; then
	# Host 2 installs web's entry from the store's watch within moments.
	for _ in $(seq 100); do "$BIN" --socket "$WORK/run-h2/vxswitch.sock" fdb show | grep -q ' store$' && break; sleep 0.1; done
	run ip netns exec $P-client getent hosts web
fi
run ip netns exec $P-client curl -sS --max-time 10 "http://$SERVER/"

step "what each host's switch knows"
vx1 fdb show
vx2 fdb show
if [ $MODE = store ]; then
	vx2 host ls
	vx2 stats web-net
else
	vx2 stats demo
fi
echo
echo "demo OK"

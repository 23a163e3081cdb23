#!/usr/bin/env bash
# Three clustered broadcasters on this machine, as the top-level README's
# "Three nodes on one machine" starts them in three terminals: HTTP on
# 127.0.0.1:8081-8083, routes on 127.0.0.1:6221-6223, data in ./data-n1..3 of
# the repository root, each node's log prefixed with its name. Ctrl-C stops
# all three.
#
#   deployments/local-cluster.sh
#
# Loopback only and no API credentials: for trying things out. The routes
# get a random shared secret, so no other local process joins the cluster. Other ports or data
# directories: HTTP_PORTS="9081 9082 9083" CLUSTER_PORTS="7221 7222 7223"
# DATA_PREFIX=/tmp/rv-n deployments/local-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a http_ports <<<"${HTTP_PORTS:-8081 8082 8083}"
read -r -a cluster_ports <<<"${CLUSTER_PORTS:-6221 6222 6223}"
data_prefix=${DATA_PREFIX:-./data-n}
if [ "${#http_ports[@]}" -ne 3 ] || [ "${#cluster_ports[@]}" -ne 3 ]; then
  echo "local-cluster.sh: HTTP_PORTS and CLUSTER_PORTS take three ports each" >&2
  exit 2
fi

bin=$(mktemp -d)
pids=()
stop() {
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true # SIGTERM: each node shuts down cleanly
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$bin"
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "building ./cmd/broadcaster ..." >&2
go build -o "$bin/broadcaster" ./cmd/broadcaster
# the routes' shared secret, new at every start: no other server on this
# machine can join the cluster
(umask 077 && head -c 32 /dev/urandom | base64 >"$bin/cluster-secret")

routes=""
for p in "${cluster_ports[@]}"; do
  routes+="${routes:+,}nats://127.0.0.1:$p"
done

for i in 0 1 2; do
  n=$((i + 1))
  "$bin/broadcaster" --addr "127.0.0.1:${http_ports[i]}" --data "${data_prefix}$n" --server-name "n$n" \
    --cluster-name revocast --cluster-addr "127.0.0.1:${cluster_ports[i]}" --replicas 3 \
    --routes "$routes" --cluster-secret-file "$bin/cluster-secret" > >(sed -u "s/^/n$n | /") 2>&1 &
  pids+=("$!")
done

echo "n1 n2 n3 on http://127.0.0.1:${http_ports[0]}, :${http_ports[1]}, :${http_ports[2]}; ready once" \
  "/readyz answers 200 (a quorum has formed). Agents: --broadcaster" \
  "http://127.0.0.1:${http_ports[0]},http://127.0.0.1:${http_ports[1]},http://127.0.0.1:${http_ports[2]}." \
  "Ctrl-C stops all three." >&2
wait

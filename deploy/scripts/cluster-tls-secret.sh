#!/usr/bin/env bash
# Prints a Kubernetes Secret with the cluster's mutual-TLS material for the Helm chart or deploy/k8s:
# a new CA (ca.crt) and, for each pod <fullname>-<i>, <fullname>-<i>.crt and .key (CN = pod name =
# TURSO_NODE_ID). The CA key is written to ./<fullname>-ca/ so more pods can be certified later;
# keep it offline.
#
#   deploy/scripts/cluster-tls-secret.sh FULLNAME REPLICAS [NAMESPACE] | kubectl apply -f -
#   e.g. deploy/scripts/cluster-tls-secret.sh turso-server 3 databases | kubectl apply -f -
#
# The Secret is named <fullname>-cluster-tls (the chart's default). Needs turso-server on PATH (or
# TURSO_SERVER_BIN). Scaling up: run it again with the same CA directory and the new replica count.
set -euo pipefail
fullname=${1:?usage: cluster-tls-secret.sh FULLNAME REPLICAS [NAMESPACE]}
replicas=${2:?usage: cluster-tls-secret.sh FULLNAME REPLICAS [NAMESPACE]}
namespace=${3:-default}
bin=${TURSO_SERVER_BIN:-turso-server}
ca_dir=${CA_DIR:-./$fullname-ca}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$ca_dir/ca.pem" ]; then
    mkdir -p "$ca_dir"
    "$bin" certs ca --out "$ca_dir" >&2
fi
for ((i = 0; i < replicas; i++)); do
    pod="$fullname-$i"
    "$bin" certs node --ca-dir "$ca_dir" --name "$pod" \
        --host "$pod" --host "$pod.$fullname-headless.$namespace.svc.cluster.local" --out "$work" >&2
done

cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $fullname-cluster-tls
  namespace: $namespace
  labels:
    app.kubernetes.io/name: turso-server
type: Opaque
data:
  ca.crt: $(base64 -w0 < "$ca_dir/ca.pem")
YAML
for ((i = 0; i < replicas; i++)); do
    pod="$fullname-$i"
    echo "  $pod.crt: $(base64 -w0 < "$work/$pod.pem")"
    echo "  $pod.key: $(base64 -w0 < "$work/$pod-key.pem")"
done

#!/usr/bin/env bash
# The cost of alerting (issue 16 row of bench/README.md): a cold first sync of 100k purchases with
# the default alert rules against the same sync with every kind disabled, side by side with
# farm-bench. B=build/<preset> picks the binaries (default build/release), W the scratch folder
# (default /tmp/b16).
set -euo pipefail
B=${B:-build/release}; B=$(realpath "$B")
W=${W:-/tmp/b16}; rm -rf $W; mkdir -p $W
$B/tests/emulator/subsync-emulator --port 0 --port-file $W/port --write-cert $W/ca.pem --generate 100000 --base-date today --token t >/dev/null 2>&1 &
emu=$!
trap 'kill $emu' EXIT
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
port=$(cat $W/port)
for v in rules off; do
cat > $W/$v.toml <<TOML
[storage]
database   = "$W/$v.db"
export_dir = "$W/$v-exports"
[sync]
page_size   = 500
concurrency = 8
rate_limit  = 0
[tls]
ca_file = "$W/ca.pem"
[[account]]
name = "bench"
apig_endpoint = "https://127.0.0.1:$port"
secmaster_endpoint = "https://127.0.0.1:$port"
[account.auth]
type = "token"
token_env = "SUBSYNC_TOKEN"
TOML
done
cat >> $W/off.toml <<'TOML'
[alerts]
disabled_kinds = ["expiring", "expired", "quota_low", "quota_exhausted", "quota_forecast", "resource_status", "source_failing", "source_stale", "auth_failing", "delivery_failed"]
TOML
# check both configs once
SUBSYNC_TOKEN=t $B/daemon/subsyncd sync --once --config $W/rules.toml --summary json > $W/rules.json 2>$W/rules.err || true
SUBSYNC_TOKEN=t $B/daemon/subsyncd sync --once --config $W/off.toml --summary json > $W/off.json 2>$W/off.err || true
grep -c "alerts sink=" $W/rules.err || true
A="rm -rf $W/rules.db* $W/rules-exports; SUBSYNC_TOKEN=t exec $B/daemon/subsyncd sync --once --config $W/rules.toml >/dev/null 2>&1"
O="rm -rf $W/off.db* $W/off-exports; SUBSYNC_TOKEN=t exec $B/daemon/subsyncd sync --once --config $W/off.toml >/dev/null 2>&1"
farm-bench -n ${N:-5} --timeout 900 --vs "sh -c '$O'" -- sh -c "$A"

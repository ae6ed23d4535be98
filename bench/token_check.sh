#!/usr/bin/env bash
# The token check alone: a component that verifies the caller's access token and
# answers its claims (host/tests/components/guarded, cinema_edge::authenticate) under
# `cinema up`, with the keys as the inline `jwks` variable. Measured with 1,000 distinct
# valid tokens cycling, one valid token, and the tokens that must stay cheap: forged
# (bad signature), expired, signed by an unknown key id, none. Tokens are minted here
# with a throwaway Ed25519 key (PyJWT), so no login is needed.
# Usage: bench/token_check.sh [DURATION] [GUARDED_WASM]   (BENCH_CINEMA_ARGS: extra `cinema up` flags)
#   GUARDED_WASM: another build of the fixture to compare (default: the current one).
set -euo pipefail
cd "$(dirname "$0")/.."
# Ports below the ephemeral range (32768+), so a client socket lingering in TIME_WAIT
# never holds them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
WASM="$(realpath "${2:-build/components/fixture_guarded.wasm}")"
ADDR=127.0.0.1:28295
INTERNAL=127.0.0.1:28296
# CINEMA_BIN: another `cinema` binary to measure (an older build, say); not rebuilt.
CINEMA="${CINEMA_BIN:-$CARGO_TARGET_DIR/release/cinema}"
WORK=$(mktemp -d /tmp/cinema-token-check.XXXXXX)

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
[ -f "$WASM" ] || { echo "$WASM missing: run 'make components'" >&2; exit 1; }
python3 -c "import jwt, cryptography" 2>/dev/null || { echo "PyJWT missing: run 'make test-tools'" >&2; exit 1; }
build_cinema

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "minting 1000 tokens..."
python3 - "$WORK" <<'EOF'
import base64, json, sys, time, uuid
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

work = sys.argv[1]
key = Ed25519PrivateKey.generate()
other = Ed25519PrivateKey.generate()
raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench", "alg": "EdDSA", "use": "sig"}]}
open(f"{work}/jwks.json", "w").write(json.dumps(jwks))
now = int(time.time())

def token(signer=key, kid="bench", exp=now + 3600):
    claims = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "roles": ["subscriber"],
              "permissions": [], "iat": now, "exp": exp, "iss": "cinema-auth", "aud": "cinema"}
    return jwt.encode(claims, signer, algorithm="EdDSA", headers={"kid": kid})

with open(f"{work}/tokens.txt", "w") as f:
    for _ in range(1000):
        f.write(token() + "\n")
open(f"{work}/forged.txt", "w").write(token(signer=other) + "\n")
open(f"{work}/expired.txt", "w").write(token(exp=now - 3600) + "\n")
open(f"{work}/unknown_kid.txt", "w").write(token(kid="not-published") + "\n")
EOF

# Each wrk thread cycles through the tokens of its file.
cat >"$WORK/cycle.lua" <<'EOF'
local tokens = {}
local next_index = 1
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  next_index = math.random(#tokens)
end
function request()
  local token = tokens[next_index]
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/guarded/whoami", { ["Authorization"] = "Bearer " .. token })
end
EOF

cat >"$WORK/spin.toml" <<EOF
spin_manifest_version = 2
[application]
name = "token-check"
[[trigger.http]]
route = "/guarded/..."
component = "guarded"
[component.guarded]
source = "$WASM"
allowed_outbound_hosts = []
[component.guarded.variables]
jwks = '$(cat "$WORK/jwks.json")'
token_issuer = "cinema-auth"
token_audience = "cinema"
EOF

RUST_LOG=warn "$CINEMA" up --from "$WORK/spin.toml" --listen "$ADDR" --internal-listen "$INTERNAL" \
  ${BENCH_CINEMA_ARGS:-} >"$WORK/host.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $(head -1 "$WORK/tokens.txt")" "http://$ADDR/guarded/whoami" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null -H "Authorization: Bearer $(head -1 "$WORK/tokens.txt")" "http://$ADDR/guarded/whoami" ||
  { echo "the platform did not answer; its log:" >&2; cat "$WORK/host.log" >&2; exit 1; }

URL="http://$ADDR/guarded/whoami"
echo "token check through cinema up ($(basename "$WASM"), wrk -t2 -c32 -d$DURATION, $(nproc) cores):"
wrk -t2 -c32 -d2s -s "$WORK/cycle.lua" "$URL" -- "$WORK/tokens.txt" >/dev/null  # warm-up
measure "  1000 valid tokens cycling (200): req/s" -t2 -c32 -d"$DURATION" -s "$WORK/cycle.lua" "$URL" -- "$WORK/tokens.txt"
measure "  one valid token (200):           req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $(head -1 "$WORK/tokens.txt")" "$URL"
measure "  forged signature (401):          req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $(cat "$WORK/forged.txt")" "$URL"
measure "  expired (401):                   req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $(cat "$WORK/expired.txt")" "$URL"
measure "  unknown key id (401):            req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $(cat "$WORK/unknown_kid.txt")" "$URL"
measure "  no token (401):                  req/s" -t2 -c32 -d"$DURATION" "$URL"

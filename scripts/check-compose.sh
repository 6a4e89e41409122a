#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose Specification's JSON schema (Docker
# cannot run on our machines, so this is how `make test` keeps the file correct).
#
# The schema comes from the `docker-compose` package on PyPI (compose/config/compose_spec.json),
# downloaded once into .local/compose-check/ with the validator's own dependencies and
# reused afterwards. Nothing is copied into the repository.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools=.local/compose-check
mkdir -p "$tools"
if [ ! -f "$tools/.installed" ]; then
  echo "compose check: installing its tools into $tools (once)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools/lib" pyyaml jsonschema
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tools" docker-compose==1.29.2
  touch "$tools/.installed"
fi

PYTHONPATH="$tools/lib" python3 - "$tools" <<'PY'
import glob, json, sys, zipfile

import jsonschema
import yaml

tools = sys.argv[1]
wheel = glob.glob(f"{tools}/docker_compose-*.whl")[0]
schema = json.loads(zipfile.ZipFile(wheel).read("compose/config/compose_spec.json"))
with open("docker-compose.yml") as f:
    document = yaml.safe_load(f)
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
for error in errors:
    print(f"docker-compose.yml: {'/'.join(map(str, error.path)) or '(top)'}: {error.message}")
services = sorted(document.get("services", {}))
for needed in ["postgres", "mysql", "kafka", "migrate", "api", "relay", "projector", "nginx"]:
    if needed not in services:
        errors.append(needed)
        print(f"docker-compose.yml: service {needed} is missing")
if errors:
    sys.exit(1)
print(f"compose check: docker-compose.yml is valid ({', '.join(services)})")
PY

# The nginx configuration the compose file mounts, checked by nginx itself (`api` is the
# replicas' name inside Compose; here it stands for any address).
# Only as root: nginx -t opens its built-in log and temp paths under /var. This machine's
# nginx (1.22) predates `resolve` in upstreams, so that word is left out of the check.
if command -v nginx >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  sed -e 's/server api:8080 resolve/server 127.0.0.1:8080/' deploy/nginx.conf >"$work/nginx.conf"
  printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\n' "$work" "$work" >>"$work/nginx.conf"
  if ! nginx -t -q -p "$work" -c "$work/nginx.conf"; then
    echo "deploy/nginx.conf: nginx refuses it" >&2
    exit 1
  fi
  echo "compose check: deploy/nginx.conf loads in nginx"
fi

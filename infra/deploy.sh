#!/usr/bin/env bash
# `make deploy`: deploys infra/template.yaml with the SAM CLI, using the arm64 bootstraps that
# `make build` left in target/lambda/<function>/bootstrap.zip (no `sam build`).
#
# The first run is `sam deploy --guided`: it asks for the stack name, the region and every
# template parameter, and saves the answers in $SAM_CONFIG (default infra/samconfig.toml).
# Later runs deploy with the saved answers. Extra arguments go to `sam deploy`, for example
#   make deploy SAM_ARGS="--parameter-overrides ApiMemorySize=512"
#   make deploy SAM_ARGS=--guided          (answer the questions again)
# docs/deploy.md walks through a first deployment.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPLATE=infra/template.yaml
CONFIG=${SAM_CONFIG:-infra/samconfig.toml}
case "$CONFIG" in /*) ;; *) CONFIG="$PWD/$CONFIG" ;; esac

say() { printf '%s\n' "$*" >&2; }

if ! command -v sam >/dev/null 2>&1; then
  say "error: the AWS SAM CLI ('sam') is not installed. Install it with"
  say "    pip install aws-sam-cli"
  say "  (or the installer from AWS's SAM CLI documentation), set up credentials for your"
  say "  account (aws configure, or aws sso login), and run 'make deploy' again."
  exit 1
fi

case "${AWS_ENDPOINT_URL:-}" in
  *127.0.0.1* | *localhost*)
    say "error: AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL points at a local stand-in (moto)."
    say "  Unset it to deploy to AWS:  env -u AWS_ENDPOINT_URL make deploy"
    exit 1
    ;;
esac

for fn in api events scheduler; do
  zip="target/lambda/$fn/bootstrap.zip"
  if [[ ! -f "$zip" ]]; then
    say "error: $zip is missing: run 'make build' first."
    exit 1
  fi
  # The ELF header's machine field (bytes 18-19) of the zipped bootstrap: the functions run on arm64.
  machine=$(python3 - "$zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    head = z.open("bootstrap").read(20)
print(head[18:20].hex() if head[:4] == b"\x7fELF" else "not-elf")
PY
)
  if [[ "$machine" != b700 ]]; then
    say "error: $zip is not an arm64 (aarch64) Linux executable (ELF machine '$machine')."
    say "  'make build' fell back to a build for this machine; install cargo-lambda and zig"
    say "  (pip install cargo-lambda) and run 'make build' again."
    exit 1
  fi
done

args=(--template-file "$TEMPLATE" --config-file "$CONFIG")
if [[ -f "$CONFIG" ]]; then
  say "== sam deploy (settings from $CONFIG)"
  exec sam deploy "${args[@]}" "$@"
fi
say "== sam deploy --guided (first deployment; the answers are saved in $CONFIG)"
say "   Suggested answers: a stack name such as notify-prod; your region; the parameters as"
say "   docs/deploy.md explains; 'Allow SAM CLI IAM role creation' Y (the stack creates the"
say "   functions' roles); save arguments to the configuration file Y."
exec sam deploy --guided "${args[@]}" --capabilities CAPABILITY_IAM "$@"

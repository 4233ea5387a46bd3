#!/usr/bin/env bash
# `make build`: release builds of the three Lambda functions, each as
# target/lambda/<function>/bootstrap.zip (the zip holds one executable named `bootstrap`), the
# layout infra/template.yaml's CodeUri points at.
#
#   - With cargo-lambda and a way to link for arm64 (zig, or an aarch64 host): a deployable
#     arm64 (Graviton) build, `cargo lambda build --release --arm64 --output-format zip`.
#   - Otherwise: a release build for this machine's architecture, packaged the same way. It is
#     good for measuring sizes and for a local look, not for deploying (the functions run on
#     arm64); `make deploy` refuses it. What to install is printed.
#
# NOTIFY_BUILD=host forces the host build; NOTIFY_BUILD=arm64 fails instead of falling back.
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTIONS=(api events scheduler)
PACKAGES=(-p notify-api -p notify-events -p notify-scheduler)
OUT=target/lambda # where infra/template.yaml's CodeUri looks
TARGET_DIR=${CARGO_TARGET_DIR:-target}
MODE=${NOTIFY_BUILD:-auto}

say() { printf '%s\n' "$*" >&2; }

install_hint() {
  say "  To build deployable arm64 bootstraps, install:"
  say "    cargo-lambda   pip install cargo-lambda   (or: cargo install --locked cargo-lambda)"
  say "    zig            pip install ziglang        (cargo-lambda uses it to link for arm64;"
  say "                   'pip install cargo-lambda' brings it along)"
  say "    the std library for arm64   rustup target add aarch64-unknown-linux-gnu"
  say "  ('make build' installs all three itself: cargo-lambda and zig into .venv, pinned in"
  say "  infra/requirements.txt), then run 'make build' again."
}

have_cargo_lambda() { cargo lambda --version >/dev/null 2>&1; }
have_zig() { command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' >/dev/null 2>&1; }
# Rust's standard library for arm64 Linux is in the toolchain's sysroot (with or without rustup).
have_arm64_std() {
  [[ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/aarch64-unknown-linux-gnu" ]]
}

zip_bootstrap() { # zip_bootstrap DIR: DIR/bootstrap → DIR/bootstrap.zip (keeps the exec bit)
  local dir=$1
  rm -f "$dir/bootstrap.zip"
  if command -v zip >/dev/null 2>&1; then
    (cd "$dir" && zip -q -X -9 bootstrap.zip bootstrap)
  else
    (cd "$dir" && python3 -m zipfile -c bootstrap.zip bootstrap)
  fi
}

elf_arch() { # elf_arch FILE → aarch64 | x86_64 | other
  case "$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')" in
    b700) echo aarch64 ;;
    3e00) echo x86_64 ;;
    *) echo other ;;
  esac
}

report() { # report BINARY_DIR
  local bin_dir=$1
  say ""
  say "function    binary (bytes)   bootstrap.zip (bytes)   architecture"
  for fn in "${FUNCTIONS[@]}"; do
    local bin="$bin_dir/$fn" zip="$OUT/$fn/bootstrap.zip" size=? arch=?
    if [[ -f "$bin" ]]; then size=$(stat -c %s "$bin"); arch=$(elf_arch "$bin"); fi
    printf '%-11s %14s   %21s   %s\n' "$fn" "$size" "$(stat -c %s "$zip")" "$arch" >&2
  done
}

build_arm64() {
  local extra=()
  # On an arm64 machine no cross linker is needed.
  if host_is_arm64; then extra=(--compiler cargo); fi
  local bins=()
  for fn in "${FUNCTIONS[@]}"; do bins+=(--bin "$fn"); done
  say "== cargo lambda build --release --arm64 --output-format zip ${extra[*]:-}"
  cargo lambda build --release --arm64 --output-format zip --lambda-dir "$OUT" "${extra[@]}" "${bins[@]}"
  report "$TARGET_DIR/aarch64-unknown-linux-gnu/release"
  say ""
  say "Deployable arm64 bootstraps: $OUT/<function>/bootstrap.zip. Next: make deploy"
}

build_host() {
  say "== cargo build --release --locked (host architecture: $(uname -m))"
  local started=$SECONDS
  cargo build --release --locked "${PACKAGES[@]}"
  say "(release build took $((SECONDS - started)) s)"
  for fn in "${FUNCTIONS[@]}"; do
    mkdir -p "$OUT/$fn"
    cp "$TARGET_DIR/release/$fn" "$OUT/$fn/bootstrap"
    zip_bootstrap "$OUT/$fn"
  done
  report "$TARGET_DIR/release"
  say ""
  if host_is_arm64; then
    say "Host (arm64) bootstraps in $OUT/<function>/bootstrap.zip."
  else
    say "NOTE: these are $(uname -m) builds of this machine, for measuring sizes only: the"
    say "functions run on arm64 (provided.al2023), so 'make deploy' will refuse them."
    install_hint
  fi
}

case "$MODE" in
  host)
    build_host
    ;;
  arm64 | auto)
    if have_cargo_lambda && (host_is_arm64 || (have_zig && have_arm64_std)); then
      build_arm64
    elif [[ "$MODE" == arm64 ]]; then
      say "error: an arm64 build needs cargo-lambda and zig (or an arm64 machine)."
      install_hint
      exit 1
    else
      if have_cargo_lambda && ! have_zig; then
        say "cargo-lambda is installed but zig is not, so it cannot link for arm64 here."
      elif have_cargo_lambda; then
        say "The Rust standard library for aarch64-unknown-linux-gnu is not installed."
      else
        say "cargo-lambda is not installed."
      fi
      install_hint
      say "Building for this machine instead."
      say ""
      build_host
    fi
    ;;
  *)
    say "error: NOTIFY_BUILD must be host, arm64 or auto, not '$MODE'"
    exit 2
    ;;
esac

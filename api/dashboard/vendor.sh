#!/bin/sh
# Refresh static/vendor/ from the npm registry at the versions pinned in package-lock.json.
# The page loads only these copies, so it works offline and no CDN is contacted at run time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund)
dest="$here/static/vendor/uplot"
mkdir -p "$dest"
cp "$tmp/node_modules/uplot/dist/uPlot.iife.min.js" "$tmp/node_modules/uplot/dist/uPlot.min.css" \
   "$tmp/node_modules/uplot/LICENSE" "$dest/"
swagger="$here/static/vendor/swagger-ui"
mkdir -p "$swagger"
cp "$tmp/node_modules/swagger-ui-dist/swagger-ui-bundle.js" \
   "$tmp/node_modules/swagger-ui-dist/swagger-ui.css" "$tmp/node_modules/swagger-ui-dist/LICENSE" \
   "$tmp/node_modules/swagger-ui-dist/NOTICE" "$swagger/"
echo "swagger-ui-dist $(node -p "require('$tmp/node_modules/swagger-ui-dist/package.json').version") -> $swagger"
echo "uPlot $(node -p "require('$tmp/node_modules/uplot/package.json').version") -> $dest"

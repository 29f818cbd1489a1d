#!/bin/sh
# A "remote shell" for rsync -e that runs rrsyncd's engine locally over pipes.
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
exec node $RRSYNCD_NODE_ARGS --import "file://$top/node_modules/tsx/dist/loader.mjs" "$here/server.ts" "$@"

#!/bin/sh
# Remote shell for the reference runs: `rsync -e real-rsh.sh ... x:path` runs the stock
# `rsync --server ...` locally, in the client's cwd, with the command re-parsed by sh as sshd would.
shift
exec sh -c "$*"

#!/bin/bash
# The `--rsync-bin` that rsync's own test suite (runtests.py) runs instead of rsync: it turns
# each plain local transfer `rsync OPTS SRC... DEST` into a push through rrsyncd
# (DEST → 127.0.0.1:/abs/DEST) or a pull (each SRC → 127.0.0.1:/abs/SRC), and runs every other
# invocation (--version, --server, daemon and remote forms, listings, batch replays) unchanged.
# test/upstream/run.ts writes a small shim that sets these and execs this script:
#   RRU_REAL  the real rsync client      RRU_MODE  push | pull
#   RRU_RSH   the ssh command for -e     RRU_LOG   file receiving one line per rewritten run
set -u
real=${RRU_REAL:?} mode=${RRU_MODE:?}

# rsync's options that take their value as the next word (rsync 3.5.0 options.c, long_options).
takes_arg=" info debug stderr modify-window confine-root chmod max-size min-size max-alloc
  max-delete filter exclude include exclude-from include-from checksum-choice cc block-size
  compare-dest copy-dest link-dest compress-choice zc skip-compress compress-level zl
  compress-threads zt partial-dir log-file log-file-format out-format log-format bwlimit
  backup-dir suffix read-batch write-batch only-write-batch files-from usermap groupmap chown
  timeout contimeout stop-after time-limit stop-at rsh rsync-path temp-dir iconv copy-as address
  port sockopts password-file early-input outbuf remote-option protocol checksum-seed config
  dparam "
short_with_arg='@fBeTM'

passthrough() { exec "$real" "$@"; }

opts=() paths=() relative=0 dashdash=0
args=("$@")
i=0
while ((i < ${#args[@]})); do
  a=${args[i]}
  i=$((i + 1))
  if ((dashdash)) || [[ $a != -* || $a == - ]]; then
    paths+=("$a")
    continue
  fi
  if [[ $a == -- ]]; then
    dashdash=1
    continue
  fi
  opts+=("$a")
  if [[ $a == --* ]]; then
    name=${a#--}
    name=${name%%=*}
    case $name in
      server | daemon | version | help | read-batch | list-only) passthrough "$@" ;;
      relative) relative=1 ;;
      no-relative | no-R) relative=0 ;;
    esac
    if [[ $a != *=* && $takes_arg == *" $name "* ]] && ((i < ${#args[@]})); then
      opts+=("${args[i]}")
      i=$((i + 1))
    fi
    continue
  fi
  # A cluster of short options; the first one that takes a value takes the rest of the word,
  # or the next word.
  for ((k = 1; k < ${#a}; k++)); do
    c=${a:k:1}
    case $c in
      R) relative=1 ;;
      V) passthrough "$@" ;;
    esac
    if [[ $short_with_arg == *"$c"* ]]; then
      if ((k + 1 == ${#a})) && ((i < ${#args[@]})); then
        opts+=("${args[i]}")
        i=$((i + 1))
      fi
      break
    fi
  done
done

# Not a plain local transfer: fewer than two paths (a listing), or any path naming a host.
((${#paths[@]} >= 2)) || passthrough "$@"
for p in "${paths[@]}"; do
  [[ $p == *:* && ${p%%:*} != */* ]] && passthrough "$@"
  [[ $p == rsync://* ]] && passthrough "$@"
done

here=$(pwd -P)
absolute() { # $1 path → absolute, keeping a trailing slash; with -R, marks the implied-dir cut
  local p=$1
  if [[ $p == /* ]]; then
    printf '%s' "$p"
  elif ((relative)); then
    # "./x" keeps its leading "./" after the cut: rsync then sends "." as it does locally.
    [[ $p == */./* ]] && printf '%s/%s' "$here" "$p" || printf '%s/./%s' "$here" "$p"
  else
    lexical "$here/$p"
  fi
}
lexical() { # $1 absolute path with ".." components (the server takes none) → without them
  local p=$1 tail=
  [[ /$p/ == */../* ]] || { printf '%s' "$p"; return; }
  [[ $p == */ || $p == */. ]] && tail=/
  p=$(realpath -s -m -- "$p")
  printf '%s%s' "${p%/}" "$tail"
}

n=${#paths[@]}
out=()
if [[ $mode == push ]]; then
  out=("${paths[@]:0:n-1}" "127.0.0.1:$(absolute "${paths[n - 1]}")")
else
  for p in "${paths[@]:0:n-1}"; do out+=("127.0.0.1:$(absolute "$p")"); done
  out+=("${paths[n - 1]}")
fi
argv=("${opts[@]}" -e "$RRU_RSH" -- "${out[@]}")
if [[ -n ${RRU_LOG:-} ]]; then
  printf -v line ' %q' "${opts[@]}" -e SSH -- "${out[@]}"
  printf '%s\t%s\trsync%s\n' "$(basename "${scratchdir:-?}")" "$here" "$line" >>"$RRU_LOG"
fi
exec "$real" "${argv[@]}"

# Rewrites citations of the old reading notes (not shipped with the repository) to docs/.
# Usage (GNU sed, idempotent):
#   sed -i -f docs/cite-map.sed $(grep -rlE 'protocol[- ]notes|peers-and-attacks|trap [0-9]|shared/platform-notes' src test bench)
# Section numbers are kept: "protocol-notes §7.2" -> "docs/protocol.md §7.2",
# "peers-and-attacks §2.4" -> "docs/attacks.md §2.4", "trap 13" -> "docs/protocol.md §11 trap 13".

# the notes by file name first (no ".md.md")
s#\(\.\./\)*\(shared/\)\{0,1\}protocol-notes\.md#docs/protocol.md#g
s#\(\.\./\)*\(shared/\)\{0,1\}peers-and-attacks\.md#docs/attacks.md#g

# "protocol-notes §x", "protocol notes §x" and the bare name (a citation may wrap before its §)
s#protocol[- ]notes#docs/protocol.md#g
s#peers-and-attacks#docs/attacks.md#g

# "trap N" (the numbered list of docs/protocol.md §11); already rewritten ones stay as they are
s#docs/protocol\.md §11 trap #@@CITE_TRAP@@#g
s#\btrap \([0-9][0-9]*\)#docs/protocol.md §11 trap \1#g
s#@@CITE_TRAP@@#docs/protocol.md §11 trap #g

# bench/README.md: the baseline anchors were in the platform notes; the repository's own
# full-scale results are in bench/results/
s#`\(\.\./\)*\(shared/\)\{0,1\}platform-notes\.md`#the full-scale tables in `bench/results/`#g

#!/bin/bash
# slow-rsh.sh RSH... : a remote shell wrapper whose server->client stream is slowed to
# RRSYNCD_IT_SLOW bytes/s (default 1 MB/s), so a test can change the source mid-transfer.
# Exit status: the inner remote shell's.
"$@" | perl -e '
  $| = 1; binmode STDIN; binmode STDOUT;
  my $rate = $ENV{RRSYNCD_IT_SLOW} || 1_000_000;
  while (my $n = sysread(STDIN, my $buf, 16384)) {
    my $off = 0;
    while ($off < $n) { my $w = syswrite(STDOUT, $buf, $n - $off, $off); exit 1 unless defined $w; $off += $w; }
    select(undef, undef, undef, $n / $rate);
  }'
exit "${PIPESTATUS[0]}"

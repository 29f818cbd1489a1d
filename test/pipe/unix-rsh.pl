#!/usr/bin/perl
# A "remote shell" for rsync -e that connects to an in-process rrsyncd session server
# (test/helpers/inproc-server.ts) on the unix socket $RRSYNCD_SOCK: it sends the command line,
# then relays bytes both ways. Cheap to start, so tests can run thousands of real rsync sessions
# against one server process.
use strict;
use warnings;
use Socket;

my $path = $ENV{RRSYNCD_SOCK} or die "RRSYNCD_SOCK is not set\n";
shift @ARGV;    # the host name rsync passes first
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
connect($s, pack_sockaddr_un($path)) or die "connect $path: $!\n";

# rsync makes its end of our stdout non-blocking: a full pipe is EAGAIN, and we wait for room.
sub put {
  my ($fh, $data) = @_;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite($fh, $data, length($data) - $off, $off);
    if (!defined $n) {
      return 0 unless $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
      my $w = '';
      vec($w, fileno($fh), 1) = 1;
      select(undef, $w, undef, undef);
      next;
    }
    $off += $n;
  }
  return 1;
}

put($s, join(' ', @ARGV) . "\n") or exit 255;
my $pid = fork() // die "fork: $!\n";
my $buf;
if ($pid == 0) {
  while (sysread(STDIN, $buf, 65536)) { put($s, $buf) or last; }
  shutdown($s, 1);
  exit 0;
}
while (sysread($s, $buf, 65536)) { put(\*STDOUT, $buf) or last; }
kill 'KILL', $pid;
waitpid($pid, 0);
exit 0;

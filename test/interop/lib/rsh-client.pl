#!/usr/bin/perl
# Remote shell for `rsync -e '.../rsh-client.pl'`: hands the remote command to the engine host in
# the test process (engine-host.ts) over a unix socket. Same wire format as rsh-client.mjs (the
# fallback when there is no perl); perl because it starts in ~10 ms where node needs ~100 ms, and
# it passes the command's bytes through untouched.
use strict;
use warnings;
use IO::Socket::UNIX;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use MIME::Base64 qw(encode_base64);

my $child = 0;
# rsync signals its remote shell with SIGUSR1 when it aborts.
$SIG{USR1} = $SIG{TERM} = sub { kill 'TERM', $child if $child; exit 255 };

shift @ARGV;    # the host name
my $b64 = sub { encode_base64(defined $_[0] ? $_[0] : '', '') };
my $header = sprintf('{"enc":"base64","cmd":"%s","root":"%s","grant":"%s","log":"%s"}' . "\n",
  $b64->(join(' ', @ARGV)), $b64->($ENV{RRSYNCD_TEST_ROOT} // ''), $b64->($ENV{RRSYNCD_TEST_GRANT} // ''),
  $b64->($ENV{RRSYNCD_TEST_LOG} // ''));

my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ENV{RRSYNCD_IT_SOCK})
  or die "rsh-client: cannot connect to $ENV{RRSYNCD_IT_SOCK}: $!\n";
binmode $_ for \*STDIN, \*STDOUT, \*STDERR, $sock;
# rsync may hand us non-blocking stdio (socketpair ends): make them blocking, as ssh copes with it.
for my $fh (\*STDIN, \*STDOUT, \*STDERR) {
  my $flags = fcntl($fh, F_GETFL, 0);
  fcntl($fh, F_SETFL, $flags & ~O_NONBLOCK) if defined $flags;
}

sub write_all {
  my ($fh, $data) = @_;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite($fh, $data, length($data) - $off, $off);
    return 0 unless defined $n;
    $off += $n;
  }
  return 1;
}

write_all($sock, $header) or die "rsh-client: write: $!\n";

$child = fork();
die "rsh-client: fork: $!\n" unless defined $child;
if ($child == 0) {
  # stdin -> socket, then half-close
  my $buf;
  while (1) {
    my $n = sysread(STDIN, $buf, 65536);
    last unless $n;
    write_all($sock, $buf) or last;
  }
  shutdown($sock, 1);
  exit 0;
}
close STDIN;

sub read_exact {
  my ($len) = @_;
  my $data = '';
  while (length $data < $len) {
    my $n = sysread($sock, $data, $len - length $data, length $data);
    return undef unless $n;
  }
  return $data;
}

my $code = 255;
while (defined(my $head = read_exact(5))) {
  my ($type, $len) = unpack('CN', $head);
  my $data = $len ? read_exact($len) : '';
  last unless defined $data;
  if ($type == 1) { write_all(\*STDOUT, $data) or last }
  elsif ($type == 2) { write_all(\*STDERR, $data) }
  elsif ($type == 3) { $code = unpack('l>', $data) }
}
kill 'TERM', $child;
waitpid($child, 0);
exit($code & 255);

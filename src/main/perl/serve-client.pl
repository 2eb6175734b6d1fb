#!/usr/bin/perl
# thaw restore --server SOCKET ... (or THAW_SERVER=SOCKET) without a JVM: ./thaw runs this instead of the CLI for such a
# restore, so that a restore served by a warm `thaw serve` does not wait for a JVM of its own to start (about 0.15 s of it
# on the project's host: docs/benchmarks.md, twenty-fourth session). The same bytes as the CLI's own client
# (dev.thaw.cli.ServeClient; the protocol is dev.thaw.cli.ServeWire, version 1), in Perl because Debian's perl-base, which
# has IO::Socket::UNIX, is on every Debian system. Arguments: the thaw command line (restore ...).
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes ();
use Cwd ();

use constant MAGIC => 0x54485731;
use constant { OUT => 1, ERR => 2, EXIT => 3, HEARTBEAT => 4 };
use constant MAX_FRAME_BYTES => 1 << 20;
use constant SILENCE_SECONDS => 30; # six missed heartbeats (the server sends one every 5 s)

# The process's start, to the kernel's tick: the launcher exec'd this, so it is the user's command's start (as
# dev.thaw.util.ProcessStart counts it); undef if /proc cannot say.
sub process_start {
    open(my $s, '<', '/proc/self/stat') or return undef;
    my $stat = <$s>;
    close $s;
    open(my $u, '<', '/proc/uptime') or return undef;
    my ($uptime) = split ' ', <$u>;
    close $u;
    my $now = Time::HiRes::time();
    $stat =~ s/^.*\)\s+//s or return undef;
    my @f = split ' ', $stat;
    return undef if @f < 20;
    return $now - ($uptime - $f[19] / 100);
}

my @args = @ARGV;
my ($server, @forwarded);
for (my $i = 0; $i < @args; $i++) {
    my $a = $args[$i];
    if ($a eq '--') { push @forwarded, @args[$i .. $#args]; last; }
    if ($a eq '--server') {
        if ($i + 1 >= @args) {
            print STDERR "Missing required parameter for option '--server' (SOCKET)\n";
            exit 2;
        }
        $server //= $args[++$i];
        next;
    }
    if ($a =~ /^--server=(.*)$/s) { $server //= $1; next; }
    push @forwarded, $a;
}
$server //= $ENV{THAW_SERVER};
if (!defined $server || $server =~ /^\s*$/) {
    print STDERR "thaw restore: expected --server SOCKET or THAW_SERVER, actual neither\n";
    exit 2;
}

my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $server);
if (!$sock) {
    print STDERR "thaw restore --server $server: expected a restore server there (thaw serve --socket $server), actual $!\n";
    exit 1;
}
binmode $sock;
binmode STDOUT;
binmode STDERR;
$| = 1;

my $start = process_start();
my $request = pack('NN', MAGIC, scalar @forwarded);
$request .= pack('N/a*', $_) for @forwarded;
$request .= pack('N/a*', Cwd::getcwd());
$request .= pack('q>', defined $start ? int($start * 1e6) : -9223372036854775807 - 1);
$request .= pack('C', (-t STDIN && -t STDOUT) ? 1 : 0);
print {$sock} $request or do { print STDERR "thaw restore --server $server: sending the request failed: $!\n"; exit 1; };
$sock->flush;

my $offset = 0;
sub read_exactly {
    my ($n, $what) = @_;
    my $buf = '';
    while (length($buf) < $n) {
        my $got = sysread($sock, $buf, $n - length($buf), length($buf));
        die "read failed: $!\n" unless defined $got;
        if ($got == 0) {
            return undef if length($buf) == 0 && $what eq 'header';
            die "frame at byte $offset: expected $n bytes of its $what, actual " . length($buf) . " before the end of the stream\n";
        }
    }
    $offset += $n;
    return $buf;
}

my $code = eval {
    local $SIG{ALRM} = sub { die "expected a frame at least every 5 s, actual none for " . SILENCE_SECONDS . " s (the server is hung)\n" };
    while (1) {
        alarm SILENCE_SECONDS;
        my $at = $offset;
        my $head = read_exactly(5, 'header');
        if (!defined $head) {
            die "expected the restore's exit code, actual the end of the connection after $offset bytes (the server ended)\n";
        }
        my ($kind, $length) = unpack('CN', $head);
        die "frame at byte $at: expected 0-" . MAX_FRAME_BYTES . " bytes of payload, actual $length\n" if $length > MAX_FRAME_BYTES;
        my $payload = $length > 0 ? read_exactly($length, 'payload') : '';
        alarm 0; # only the server's silence counts, not a write here that waits (a pipe nobody reads yet)
        if ($kind == OUT) {
            print STDOUT $payload;
        } elsif ($kind == ERR) {
            print STDERR $payload;
        } elsif ($kind == EXIT) {
            die "exit frame at byte $at: expected 4 bytes of payload, actual $length\n" if $length != 4;
            alarm 0;
            return unpack('l>', $payload);
        } elsif ($kind != HEARTBEAT) {
            die "frame at byte $at: expected a kind 1-4, actual $kind\n";
        }
    }
};
alarm 0;
if (!defined $code) {
    my $why = $@;
    chomp $why;
    print STDERR "thaw restore --server $server: $why\n";
    exit 1;
}
exit($code & 0xff);

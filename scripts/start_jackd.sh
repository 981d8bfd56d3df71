#!/bin/sh
# Start a JACK dummy server (no sound card needed) unless one already runs, so that python-rtmidi
# can open real virtual MIDI ports on machines without an ALSA sequencer (containers, CI).
# The server keeps running after this script ends; its log is $JACK_LOG (default /tmp/latentlive-jackd.log).
set -eu

LOG="${JACK_LOG:-${TMPDIR:-/tmp}/latentlive-jackd.log}"

if ! command -v jackd >/dev/null 2>&1; then
    echo "start_jackd.sh: jackd not found; install it (Debian/Ubuntu: apt-get install jackd2)" >&2
    exit 1
fi

# jack_wait -c prints "running" / "not running" (and exits 0 either way).
if [ "$(jack_wait -c 2>/dev/null)" = "running" ]; then
    echo "JACK server already running"
    exit 0
fi

# No jackd runs: what servers left in /dev/shm when they were killed (kill -9, a container stopped) is stale.
# JACK keeps a table of servers there, and a full table refuses new ones ("Too many servers already active").
if ! pgrep -x jackd >/dev/null 2>&1; then
    rm -rf /dev/shm/jack-* /dev/shm/jack_* 2>/dev/null || true
fi

# -p 256: a 5.3 ms period at 48 kHz, the granularity with which JACK delivers MIDI events.
nohup setsid jackd -d dummy -r 48000 -p 256 >"$LOG" 2>&1 </dev/null &

# Wait (at most 10 s) until clients can connect.
if jack_wait -w -t 10 >/dev/null 2>&1 && [ "$(jack_wait -c 2>/dev/null)" = "running" ]; then
    echo "JACK dummy server started (log: $LOG)"
else
    echo "start_jackd.sh: jackd did not start; see $LOG" >&2
    exit 1
fi

/**
 * The client of bench/farm.ts's power-off measurement, run inside the lab's client host (not a benchmark itself):
 * every `everyMs` it opens a new HTTP/1.0 request to `vip:port` from `src` and the next of `sports` (round robin), each
 * with `timeoutMs` for the whole exchange (connect, request, the answer), and prints one line per attempt as it ends:
 *   ok <node> <sport>        the farm-web app answered with its node's name
 *   fail <reason> <sport>    refused, timed out, reset, …
 * Attempts overlap (a timed-out SYN does not hold the next one back), so the first answer after a takeover is seen
 * within about `everyMs`, not `timeoutMs`. A source port is used again only after its previous attempt ended (give
 * at least timeoutMs / everyMs ports). Runs until killed.
 *   node dist/bench/farm-probe.js <vip> <port> <src> <sport,sport,…> [everyMs=20] [timeoutMs=300]
 */
import net from 'node:net';

const [vip, portArg, src, sportsArg, everyArg, timeoutArg] = process.argv.slice(2);
if (!vip || !portArg || !src || !sportsArg) {
  console.error('usage: farm-probe <vip> <port> <src> <sport,sport,…> [everyMs] [timeoutMs]');
  process.exit(2);
}
const port = Number(portArg);
const sports = sportsArg.split(',').map(Number);
const everyMs = Number(everyArg ?? 20);
const timeoutMs = Number(timeoutArg ?? 300);
const busy = new Set<number>();

function attempt(sport: number): void {
  busy.add(sport);
  let body = '';
  let done = false;
  const sock = net.connect({ host: vip!, port, localAddress: src, localPort: sport });
  const end = (line: string) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.destroy();
    busy.delete(sport);
    process.stdout.write(`${line} ${sport}\n`);
  };
  const timer = setTimeout(() => end('fail timeout'), timeoutMs);
  sock.setEncoding('utf8');
  sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${vip}\r\n\r\n`));
  sock.on('data', (d: string) => { body += d; });
  sock.on('end', () => {
    const name = body.split('\r\n\r\n')[1]?.trim();
    end(name ? `ok ${name}` : 'fail empty');
  });
  sock.on('error', (e: NodeJS.ErrnoException) => end(`fail ${e.code ?? e.message}`));
}

let next = 0;
setInterval(() => {
  for (let i = 0; i < sports.length; i++) {
    const sport = sports[(next + i) % sports.length]!;
    if (busy.has(sport)) continue;
    next = (next + i + 1) % sports.length;
    attempt(sport);
    return;
  }
}, everyMs);

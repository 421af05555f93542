// Load client of the appender (not part of the module's scripts): sends "append <n>" with n = FIRST, FIRST+1, … one
// request at a time to ADDR:PORT, reconnecting after any error, until its stdin ends. Used by the lab's
// AppendRecorder (src/lab/appender.ts), which runs it on a lab host and reads its stdout. No dependencies.
//
//   node client.mjs ADDR PORT FIRST [ACK_TIMEOUT_MS=2000] [CONNECT_TIMEOUT_MS=1000] [BACKOFF_MS=100] [PACE_MS=0]
//
// Output, one line per event, in order (stdout; synchronous on a pipe):
//   sent <n>            the request for n is about to be written
//   ok <n>              the server replied exactly "ok <n>": n is acknowledged. Printed for nothing else.
//   err <n|-> <why>     request n failed (error reply, unexpected reply, lost connection, no reply within
//                       ACK_TIMEOUT_MS) or a connection could not be made (-). The connection is dropped; after
//                       BACKOFF_MS a new one is made and the next request uses n+1: ids are never reused, so a request
//                       whose outcome is unknown may be in the file without having been acknowledged.
//   done <next>         stdin ended and the request in flight, if any, finished; the process exits 0.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const [addr, portArg, firstArg, ackArg, connArg, backoffArg, paceArg] = process.argv.slice(2);
if (!addr || !portArg || !firstArg) {
  console.error('usage: node client.mjs ADDR PORT FIRST [ACK_TIMEOUT_MS] [CONNECT_TIMEOUT_MS] [BACKOFF_MS] [PACE_MS]');
  process.exit(2);
}
const port = Number(portArg);
const ackTimeoutMs = Number(ackArg ?? 2000);
const connectTimeoutMs = Number(connArg ?? 1000);
const backoffMs = Number(backoffArg ?? 100);
const paceMs = Number(paceArg ?? 0);
let next = Number(firstArg);

let stopping = false;
process.stdin.on('end', () => { stopping = true; });
process.stdin.on('error', () => { stopping = true; });
process.stdin.resume();

const say = (line) => process.stdout.write(`${line}\n`);
const oneLine = (s) => String(s).replace(/\s+/g, ' ').slice(0, 200);

/** One TCP connection; `request` sends one line and resolves with the first reply line. */
class Conn {
  constructor(socket) {
    this.socket = socket;
    this.buf = '';
    this.waiter = null;
    this.closed = null;
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (d) => {
      this.buf += d;
      const nl = this.buf.indexOf('\n');
      if (nl >= 0 && this.waiter) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.settle(null, line);
      }
    });
    socket.on('error', (e) => this.fail(e.code ?? e.message));
    socket.on('close', () => this.fail('connection closed'));
  }

  static open() {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: addr, port });
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`connect timed out after ${connectTimeoutMs} ms`)); }, connectTimeoutMs);
      socket.once('connect', () => { clearTimeout(timer); resolve(new Conn(socket)); });
      socket.once('error', (e) => { clearTimeout(timer); socket.destroy(); reject(e); });
    });
  }

  request(line) {
    if (this.closed) return Promise.reject(new Error(this.closed));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(new Error(`no reply within ${ackTimeoutMs} ms`)), ackTimeoutMs);
      this.waiter = { resolve, reject, timer };
      this.socket.write(`${line}\n`);
    });
  }

  fail(why) {
    this.closed ??= why;
    this.settle(new Error(why));
  }

  settle(err, line) {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve(line);
  }

  destroy() {
    this.socket.destroy();
  }
}

let conn = null;
while (!stopping) {
  if (!conn) {
    try {
      conn = await Conn.open();
    } catch (e) {
      say(`err - ${oneLine(e.code ?? e.message)}`);
      await sleep(backoffMs);
      continue;
    }
  }
  const id = next++;
  say(`sent ${id}`);
  try {
    const reply = await conn.request(`append ${id}`);
    if (reply !== `ok ${id}`) throw new Error(`reply ${JSON.stringify(reply.slice(0, 120))}`);
    say(`ok ${id}`);
    if (paceMs > 0) await sleep(paceMs);
  } catch (e) {
    say(`err ${id} ${oneLine(e.message)}`);
    conn.destroy();
    conn = null;
    await sleep(backoffMs);
  }
}
conn?.destroy();
say(`done ${next}`);
process.exit(0);

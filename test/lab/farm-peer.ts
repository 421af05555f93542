// The processes test/lab/farm-filter.test.ts runs inside the lab's hosts (not a test file itself).
//   node farm-peer.js server <name> <port>…   listens on every port; says "<name>\n" when a connection opens and
//                                             again for every line it receives; prints "ready" once listening
//   node farm-peer.js client                  JSON lines on stdin → JSON lines on stdout (ClientRequest/ClientReply)
import net from 'node:net';
import readline from 'node:readline';

export type ClientRequest =
  /** connect, read the greeting, close */
  | { id: number; op: 'ask'; host: string; port: number; src: string; sport?: number; timeoutMs: number }
  /** connect, read the greeting, keep the connection as `key` */
  | { id: number; op: 'open'; key: string; host: string; port: number; src: string; sport?: number; timeoutMs: number }
  /** send a line on `key`, read the answer */
  | { id: number; op: 'ping'; key: string; timeoutMs: number }
  | { id: number; op: 'close'; key: string };

export type ClientReply = { id: number; ok: true; name: string; localPort: number } | { id: number; ok: false; error: string };

/** A connection that hands out the lines it receives, one per `next`. */
class Lines {
  private buf = '';
  private readonly lines: string[] = [];
  private waiter: ((r: { line?: string; error?: string }) => void) | undefined;
  private failure: string | undefined;

  constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => this.fail(e.code ?? e.message));
    sock.on('close', () => this.fail('closed'));
  }

  next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error('timeout'));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (r.line !== undefined) resolve(r.line);
        else reject(new Error(r.error));
      };
      this.wake();
    });
  }

  private fail(why: string): void {
    this.failure ??= why;
    this.wake();
  }

  private wake(): void {
    if (!this.waiter) return;
    if (this.lines.length) this.waiter({ line: this.lines.shift()! });
    else if (this.failure) this.waiter({ error: this.failure });
  }
}

function server(name: string, ports: number[]): void {
  let listening = 0;
  for (const port of ports) {
    net
      .createServer((sock) => {
        sock.on('error', () => undefined);
        sock.write(`${name}\n`);
        // a peer that closes without reading (a tcp checker) resets the connection: not an error of the server
        readline.createInterface({ input: sock }).on('line', () => sock.write(`${name}\n`)).on('error', () => undefined);
      })
      .listen(port, '0.0.0.0', () => {
        if (++listening === ports.length) process.stdout.write('ready\n');
      });
  }
}

function client(): void {
  const held = new Map<string, Lines>();
  const reply = (r: ClientReply) => process.stdout.write(`${JSON.stringify(r)}\n`);
  const connect = async (q: Extract<ClientRequest, { op: 'ask' | 'open' }>): Promise<{ c: Lines; greeting: string }> => {
    const sock = net.connect({ host: q.host, port: q.port, localAddress: q.src, ...(q.sport ? { localPort: q.sport } : {}) });
    const c = new Lines(sock);
    try {
      return { c, greeting: await c.next(q.timeoutMs) };
    } catch (e) {
      sock.destroy();
      throw e;
    }
  };
  readline.createInterface({ input: process.stdin }).on('line', (text) => {
    const q = JSON.parse(text) as ClientRequest;
    void (async () => {
      try {
        if (q.op === 'ask' || q.op === 'open') {
          const { c, greeting } = await connect(q);
          const localPort = c.sock.localPort ?? 0;
          if (q.op === 'ask') c.sock.destroy();
          else held.set(q.key, c);
          reply({ id: q.id, ok: true, name: greeting, localPort });
        } else if (q.op === 'ping') {
          const c = held.get(q.key);
          if (!c) throw new Error(`no connection ${q.key}`);
          c.sock.write('ping\n');
          reply({ id: q.id, ok: true, name: await c.next(q.timeoutMs), localPort: c.sock.localPort ?? 0 });
        } else {
          held.get(q.key)?.sock.destroy();
          held.delete(q.key);
          reply({ id: q.id, ok: true, name: '', localPort: 0 });
        }
      } catch (e) {
        reply({ id: q.id, ok: false, error: (e as Error).message });
      }
    })();
  });
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'server') server(rest[0]!, rest.slice(1).map(Number));
else if (mode === 'client') client();

import net from 'node:net';

export type Direction = 'c2s' | 's2c';

/**
 * A man-in-the-middle TCP proxy that understands the channel's framing (u32 length + body) and lets a test rewrite
 * the frame stream: `tamper(direction, index, frame)` returns the frames to forward instead (index counts every frame
 * in that direction from 0, handshake frames included: c2s 0 = hello, 1 = proof, then data frames from 2; s2c 0 =
 * hello, 1 = proof, data from 2). It connects to the target from `localAddress`, so the server sees the address the
 * test wants.
 */
export interface Proxy {
  port: number;
  /** every frame seen, per direction, as received (before tampering) */
  seen: Record<Direction, Buffer[]>;
  close(): Promise<void>;
}

export function startProxy(opts: {
  target: { host: string; port: number };
  localAddress: string;
  tamper?: (dir: Direction, index: number, frame: Buffer, seen: Buffer[]) => Buffer[];
}): Promise<Proxy> {
  const seen: Record<Direction, Buffer[]> = { c2s: [], s2c: [] };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: opts.target.host, port: opts.target.port, localAddress: opts.localAddress });
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from: net.Socket, to: net.Socket, dir: Direction) => {
      let buf = Buffer.alloc(0);
      from.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4) {
          const len = buf.readUInt32BE(0);
          if (buf.length < 4 + len) break;
          const frame = buf.subarray(0, 4 + len);
          buf = buf.subarray(4 + len);
          const index = seen[dir].length;
          seen[dir].push(Buffer.from(frame));
          const out = opts.tamper ? opts.tamper(dir, index, Buffer.from(frame), seen[dir]) : [frame];
          for (const f of out) to.write(f);
        }
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream, 'c2s');
    pipe(upstream, client, 's2c');
  });
  return new Promise((resolve) => {
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        seen,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

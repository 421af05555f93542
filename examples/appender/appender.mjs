// Application of the `appender` module: an fsync appender, the smallest server whose acknowledgements are durable
// promises. Started in the background by bin/start_prim, stopped (SIGTERM) by bin/stop_prim. No dependencies.
//
// Protocol (TCP, one request per line, any number of clients, requests served one at a time in arrival order):
//   append <id>   <id> is 1–64 characters of [A-Za-z0-9_.-]. Appends the record line "<id>\n" to
//                 <APPENDER_DIR>/records.log, fdatasyncs the file, and only then replies "ok <id>\n".
//   anything else replies "err <message>\n" and the connection stays usable.
//
// Durability contract: "ok <id>" is sent only after the record's bytes were written and fdatasync returned on the one
// descriptor this process opened (O_APPEND, at start). An I/O error on write or fdatasync replies "err <message>" to
// that request and then ends the process with exit code 1 without acknowledging anything else: after a failed
// fsync the kernel may have dropped the dirty pages, and a later fsync could report success for data that is gone.
//
// Settings (environment; the module's <var>s): APPENDER_DIR (default /srv/appender/data), APPENDER_PORT (default
// 7070; 0 picks a free port, printed at start), APPENDER_HOST (address to bind, default 0.0.0.0).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const dir = process.env.APPENDER_DIR || '/srv/appender/data';
const port = Number(process.env.APPENDER_PORT || 7070);
const host = process.env.APPENDER_HOST || '0.0.0.0';
const node = process.env.TANDEM_NODE ?? 'unknown';
const file = path.join(dir, 'records.log');
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_LINE = 1024;

fs.mkdirSync(dir, { recursive: true });
const fd = fs.openSync(file, 'a');
let appended = 0;

/** Writes all of `buf` at the end of the file (O_APPEND) and makes it durable; throws on any I/O error. */
function appendDurably(buf) {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  fs.fdatasyncSync(fd);
}

/** The reply to one request line; ends the process after replying when the record could not be made durable. */
function handle(line, socket) {
  const m = /^append (\S+)$/.exec(line.trim());
  if (!m) return `err expected "append <id>", got ${JSON.stringify(line.slice(0, 80))}`;
  const id = m[1];
  if (!ID.test(id)) return `err bad id ${JSON.stringify(id.slice(0, 80))}: 1-64 characters of [A-Za-z0-9_.-]`;
  try {
    appendDurably(Buffer.from(`${id}\n`));
  } catch (e) {
    const msg = `err ${file}: ${e.message}`;
    console.error(`appender: ${msg}; exiting (nothing more can be acknowledged)`);
    socket.end(`${msg}\n`, () => process.exit(1));
    setTimeout(() => process.exit(1), 500).unref();
    return null;
  }
  appended += 1;
  return `ok ${id}`;
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.setEncoding('utf8');
  let buf = '';
  socket.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const reply = handle(line, socket);
      if (reply === null) return;
      if (!socket.destroyed) socket.write(`${reply}\n`);
    }
    if (buf.length > MAX_LINE) {
      socket.end(`err line longer than ${MAX_LINE} bytes\n`);
      buf = '';
    }
  });
  socket.on('error', () => undefined); // a client that went away; nothing is owed to it
});
server.on('error', (e) => {
  console.error(`appender: ${e.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const a = server.address();
  console.log(`appender on ${node} (pid ${process.pid}) listening on ${a.address}:${a.port}, appending to ${file}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    console.log(`appender on ${node}: ${sig}, ${appended} record(s) appended by this process`);
    fs.closeSync(fd);
    process.exit(0);
  });
}

// Demo application of the `demo` module: a small HTTP server on port 8080 that says which node serves it and how
// many requests the service has answered. With DEMO_DATA set (the module replicates that directory), the count is
// kept in DEMO_DATA/hits and made durable (fdatasync) before each answer, so it goes on where it was after a
// failover: the data followed the application to the other node.
// Started in the background by bin/start_prim, stopped by bin/stop_prim; creates DEMO_READY once it listens.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const node = process.env.TANDEM_NODE ?? 'unknown';
const port = Number(process.env.DEMO_PORT ?? 8080);
const file = process.env.DEMO_DATA ? path.join(process.env.DEMO_DATA, 'hits') : null;

let hits = 0;
let fd = null;
if (file) {
  fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  hits = Number.parseInt(fs.readFileSync(fd, 'utf8'), 10) || 0;
}

const server = http.createServer((req, res) => {
  hits += 1;
  let error = null;
  if (fd !== null) {
    try {
      const text = `${hits}\n`;
      fs.writeSync(fd, text, 0);
      fs.ftruncateSync(fd, Buffer.byteLength(text));
      fs.fdatasyncSync(fd);
    } catch (e) {
      error = e.message;
    }
  }
  res.writeHead(error ? 500 : 200, { 'content-type': 'application/json', connection: 'close' });
  res.end(`${JSON.stringify(error ? { node, error } : { node, hits, pid: process.pid })}\n`);
});
server.listen(port, '0.0.0.0', () => {
  console.log(`demo app on ${node} listening on :${port}${file ? `, count kept in ${file} (${hits})` : ''}`);
  // DEMO_READY (set by bin/start_prim): a file created once the server listens
  if (process.env.DEMO_READY) fs.writeFileSync(process.env.DEMO_READY, `${process.pid}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

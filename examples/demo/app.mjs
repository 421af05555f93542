// Demo application of the `demo` module: a small HTTP server on port 8080 that says which node serves it.
// Started in the background by bin/start_prim, stopped by bin/stop_prim.
import http from 'node:http';

const node = process.env.TANDEM_NODE ?? 'unknown';
const port = Number(process.env.DEMO_PORT ?? 8080);
let hits = 0;
const server = http.createServer((req, res) => {
  hits += 1;
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
  res.end(`${JSON.stringify({ node, hits, pid: process.pid })}\n`);
});
server.listen(port, '0.0.0.0', () => console.log(`demo app on ${node} listening on :${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

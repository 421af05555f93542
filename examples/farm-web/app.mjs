// Application of the `farm-web` module: a tiny HTTP server that answers with the name of the node that served the
// request, so a client of the farm's VIP sees which node its address is balanced to.
// Started in the background by bin/start_both on every node, stopped by bin/stop_both; creates FARM_WEB_READY once it
// listens.
import fs from 'node:fs';
import http from 'node:http';

const node = process.env.TANDEM_NODE ?? 'unknown';
const port = Number(process.env.FARM_WEB_PORT ?? 8080);

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
  res.end(`${node}\n`);
});
server.listen(port, '0.0.0.0', () => {
  console.log(`farm-web on ${node} listening on :${port}`);
  if (process.env.FARM_WEB_READY) fs.writeFileSync(process.env.FARM_WEB_READY, `${process.pid}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

// Baseline 1: the fastest a Node HTTP server gets here — node:http answering a fixed body.
import http from 'node:http';

const body = Buffer.from('Hello, world!');
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 5_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));

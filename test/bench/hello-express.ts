// Baseline 2: an Express 5 hello-world, the framework floor every Paylink page stands on.
import express from 'express';

const app = express();
app.get('/', (_req, res) => {
  res.send('Hello, world!');
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
server.keepAliveTimeout = 5_000;
process.once('SIGTERM', () => server.close(() => process.exit(0)));

/**
 * A tiny TCP proxy for fault injection: put it between the app and Redis or MariaDB, then make the
 * dependency "go away" without touching the shared server.
 *
 * - `up`        forwards bytes both ways (the default)
 * - `blackhole` keeps connections open but forwards nothing (a hung server / network partition)
 * - `down`      resets every open connection and every new one (a crashed server)
 */
import net from 'node:net';

export type ProxyMode = 'up' | 'blackhole' | 'down';

export class TcpProxy {
  private server: net.Server;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private mode: ProxyMode = 'up';
  port = 0;

  private constructor(private readonly targetHost: string, private readonly targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Starts a proxy on 127.0.0.1 (random port) in front of host:port. */
  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetHost, targetPort);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** A proxy in front of the host and port of `url`; returns the proxy and `url` rewritten to go through it. */
  static async forUrl(url: string, defaultPort: number): Promise<{ proxy: TcpProxy; url: string }> {
    const u = new URL(url);
    const proxy = await TcpProxy.start(u.hostname === 'localhost' ? '127.0.0.1' : u.hostname, Number(u.port || defaultPort));
    u.hostname = '127.0.0.1';
    u.port = String(proxy.port);
    return { proxy, url: u.toString() };
  }

  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', forget);
    upstream.on('close', forget);
    client.on('data', (chunk) => {
      if (this.mode === 'up') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (this.mode === 'up') client.write(chunk);
    });
  }

  /** Stops forwarding but keeps connections open: requests hang until the caller times out. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** Resets every connection and refuses new ones until up(). */
  down(): void {
    this.mode = 'down';
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /**
   * Forwards again. Connections that lived through a blackhole have lost bytes, so they are reset
   * (clients reconnect), as after a real partition.
   */
  up(): void {
    if (this.mode === 'blackhole') {
      for (const { client, upstream } of this.pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      this.pairs.clear();
    }
    this.mode = 'up';
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// The admin HTTP port: /healthz (the process answers), /readyz (listeners bound, table loaded),
// /metrics (Prometheus), /endpoints (the live table as JSON) and POST /reload.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceMetrics } from './metrics.js';

export interface AdminHandlers {
  readonly metrics: ServiceMetrics;
  ready(): boolean;
  /** The live endpoint table, as served on /endpoints. */
  endpoints(): unknown;
  /** Reloads the configuration; `ok: false` when it was refused. */
  reload(): Promise<{ ok: boolean }>;
}

export interface AdminAddress {
  readonly host: string;
  readonly port: number;
}

export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly address: AdminAddress,
  ) {}

  static async listen(
    at: AdminAddress,
    handlers: AdminHandlers,
    onError: (err: Error) => void,
  ): Promise<AdminServer> {
    const server = createServer((req, res) => {
      handle(req, res, handlers).catch((err: unknown) => {
        onError(err instanceof Error ? err : new Error(String(err)));
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    });
    // A scraper that keeps its connection open must not hold the service up when it stops.
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', onError);
    const bound = server.address() as AddressInfo;
    return new AdminServer(server, { host: bound.address, port: bound.port });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n');
}

const ROUTES: Record<string, string> = {
  '/healthz': 'GET',
  '/readyz': 'GET',
  '/metrics': 'GET',
  '/endpoints': 'GET',
  '/reload': 'POST',
};

async function handle(req: IncomingMessage, res: ServerResponse, h: AdminHandlers): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname;
  const allowed = ROUTES[path];
  if (allowed === undefined) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (method !== allowed) {
    return send(res, 405, 'text/plain; charset=utf-8', `use ${allowed}\n`, { allow: allowed });
  }
  // Nothing here reads a body; draining it lets the connection be reused.
  req.resume();
  switch (path) {
    case '/healthz':
      return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    case '/readyz':
      return h.ready()
        ? send(res, 200, 'text/plain; charset=utf-8', 'ready\n')
        : send(res, 503, 'text/plain; charset=utf-8', 'not ready\n');
    case '/metrics':
      return send(res, 200, h.metrics.contentType, await h.metrics.text());
    case '/endpoints':
      return json(res, 200, h.endpoints());
    case '/reload': {
      const result = await h.reload();
      // 409: the request was fine, the configuration it asked to load was not.
      return json(res, result.ok ? 200 : 409, result);
    }
  }
}

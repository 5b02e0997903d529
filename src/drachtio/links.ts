// The engine's connections to drachtio-servers, one drachtio-srf application per server (inbound:
// we connect to each, with back-off) or one listening for them (outbound: each server connects to us
// per request, as its request-handler says). Every change of state is logged once; the state of
// each link is what /readyz and /metrics read.

import { createServer, type Server } from 'node:net';
import type { Logger } from 'pino';
import type { DrachtioConfig } from '../config/schema.js';
import { hostPort } from '../sip/host-port.js';
import { LogThrottle } from '../base/log-throttle.js';
import { loadSrf, type Srf } from './srf.js';

export type LinkState = 'connecting' | 'connected' | 'refused' | 'listening' | 'closed';

/** One drachtio-server (inbound) or our listening socket (outbound), as /metrics shows it. */
export interface LinkView {
  /** host:port of the drachtio-server's admin port, or of our listening socket. */
  readonly server: string;
  readonly direction: 'inbound' | 'outbound';
  readonly state: LinkState;
  /** drachtio-server's SIP addresses ("udp/127.0.0.1:5060"), once connected (inbound). */
  readonly sip: readonly string[];
}

interface Link {
  readonly srf: Srf;
  server: string;
  readonly direction: 'inbound' | 'outbound';
  state: LinkState;
  sip: string[];
}

/** Called for each drachtio-srf application made, to register the request handlers on it. */
export type Install = (srf: Srf) => void;

export class DrachtioLinks {
  private readonly links: Link[] = [];
  private closing = false;
  private outboundServer: Server | undefined;
  private readonly refusedLog = new LogThrottle(60_000);

  constructor(
    private readonly config: DrachtioConfig,
    private readonly logger: Logger,
  ) {}

  /**
   * Makes the applications and starts connecting (or listening). Resolves at once for inbound
   * links: a drachtio-server that cannot be reached now is retried with back-off, and the service
   * runs (not ready) meanwhile. Rejects when the outbound socket cannot listen.
   */
  async open(install: Install): Promise<void> {
    const SrfClass = loadSrf();
    for (const s of this.config.servers ?? []) {
      const srf = new SrfClass();
      const link: Link = {
        srf,
        server: hostPort(s.host, s.port),
        direction: 'inbound',
        state: 'connecting',
        sip: [],
      };
      this.links.push(link);
      this.watchInbound(link);
      install(srf);
      srf.connect({
        host: s.host,
        port: s.port,
        secret: s.secret,
        reconnect: { retryMaxDelay: this.config.reconnect.max },
      });
    }
    const listen = this.config.listen;
    if (listen !== undefined) {
      const srf = new SrfClass();
      const link: Link = {
        srf,
        server: hostPort(listen.address, listen.port),
        direction: 'outbound',
        state: 'connecting',
        sip: [],
      };
      this.links.push(link);
      install(srf);
      await this.listen(link, listen);
    }
  }

  /** Every link, for /metrics and the logs. */
  views(): LinkView[] {
    return this.links.map((l) => ({
      server: l.server,
      direction: l.direction,
      state: l.state,
      sip: [...l.sip],
    }));
  }

  /** Where drachtio-servers connect to us (outbound links), host:port; undefined for inbound. */
  outboundAddress(): string | undefined {
    const link = this.links.find((l) => l.direction === 'outbound' && l.state === 'listening');
    return link === undefined ? undefined : (this.config.listen?.advertise ?? link.server);
  }

  /** Ready to take requests: one inbound link connected, or the outbound socket listening. */
  ready(): boolean {
    return this.links.some((l) => l.state === 'connected' || l.state === 'listening');
  }

  /** The applications connected to their drachtio-server now (inbound links). */
  connectedApps(): Srf[] {
    return this.links.filter((l) => l.state === 'connected').map((l) => l.srf);
  }

  /** The drachtio-srf applications, one per link. */
  apps(): Srf[] {
    return this.links.map((l) => l.srf);
  }

  /** Disconnects from every server (or stops listening); no reconnection follows. */
  close(): void {
    this.closing = true;
    for (const l of this.links) {
      try {
        if (l.direction === 'inbound') disconnect(l.srf);
        else this.outboundServer?.close();
      } catch (err) {
        this.logger.debug({ server: l.server, err: String(err) }, 'drachtio: error while disconnecting');
      }
      l.state = 'closed';
    }
  }

  private watchInbound(link: Link): void {
    const { srf, server } = link;
    srf.on('connect', (err: Error | null, hp: string | undefined) => {
      if (err !== null && err !== undefined) {
        // drachtio-srf reports a refused secret as a failed connect; drachtio-server then closes the
        // socket and drachtio-srf tries again, its back-off reset by the connect: said once a minute.
        link.state = 'refused';
        if (this.refusedLog.take(server, performance.now()) === undefined) return;
        this.logger.error(
          { server, err: err.message },
          `drachtio-server ${server} refused the connection: ${err.message} (check drachtio.servers[].secret)`,
        );
        return;
      }
      link.state = 'connected';
      link.sip = (hp ?? '').split(',').filter((s) => s !== '');
      this.logger.info({ server, sip: link.sip }, `connected to drachtio-server ${server}`);
    });
    srf.on('reconnecting', (r: { delay: number; attempt: number }) => {
      // A refused secret: the server is reachable, and the refusal was said once; each retry of it
      // is not news ("not reachable" would be wrong, and four lines a second at drachtio-srf's pace).
      if (this.closing || link.state === 'refused') return;
      this.logger.warn(
        { server, delayMs: r.delay, attempt: r.attempt },
        `drachtio-server ${server} not reachable: trying again in ${r.delay} ms`,
      );
    });
    srf.on('close', () => {
      if (this.closing) return;
      if (link.state === 'connected')
        this.logger.warn({ server }, `connection to drachtio-server ${server} lost`);
      if (link.state !== 'refused') link.state = 'connecting';
    });
    srf.on('error', (err: Error) => {
      if (this.closing) return;
      this.logger.debug({ server, err: err.message }, `drachtio-server ${server}: ${err.message}`);
    });
  }

  /** Outbound: our own listening socket, handed to drachtio-srf once it listens (so a bind error is ours). */
  private async listen(link: Link, listen: NonNullable<DrachtioConfig['listen']>): Promise<void> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`drachtio outbound: cannot listen on ${link.server}: ${err.message}`)),
      );
      server.listen(listen.port, listen.address, () => resolve());
    });
    server.on('error', (err) =>
      this.logger.warn({ err: err.message }, `drachtio outbound socket: ${err.message}`),
    );
    // Port 0: the port the system chose is the one drachtio-servers must be told.
    const a = server.address();
    if (a !== null && typeof a !== 'string') link.server = hostPort(listen.address, a.port);
    link.srf.on('error', (err: Error) =>
      this.logger.debug({ err: err.message }, `drachtio outbound connection: ${err.message}`),
    );
    link.srf.listen({ server, secret: listen.secret });
    this.outboundServer = server;
    link.state = 'listening';
    this.logger.info({ listen: link.server }, `waiting for drachtio-server connections on ${link.server}`);
  }
}

/**
 * Ends an inbound application's connection for good. drachtio-srf's disconnect() throws while it is
 * between attempts and leaves the pending attempt armed, so the retry is stopped first.
 */
function disconnect(srf: Srf): void {
  const wp = (
    srf as unknown as {
      _app?: { wp?: { closing: boolean; reconnectVars?: { retryTimer?: NodeJS.Timeout | null } } };
    }
  )._app?.wp;
  if (wp !== undefined) {
    wp.closing = true;
    if (wp.reconnectVars?.retryTimer) clearTimeout(wp.reconnectVars.retryTimer);
  }
  try {
    srf.disconnect();
  } catch {
    // Not connected at this moment: nothing more to close.
  }
}

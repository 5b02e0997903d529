// HEP capture of one service (server.yaml `hep`): the hook every link and the router hold, switched
// on, changed and off by reloads, and the sockets its datagrams leave by.

import type { Logger } from 'pino';
import type { HepConfig } from '../config/schema.js';
import { HepExporter, type HepSettings, type HepStats, type HepTarget } from '../hep/exporter.js';
import { CaptureHook } from '../transport/capture.js';
import type { UdpListener } from '../transport/udp.js';
import { NativeUdpListener } from '../transport/udp-native.js';

/** server.yaml's hep section as the exporter takes it; undefined when capture is off. */
export function hepSettingsFrom(hep: HepConfig | undefined): HepSettings | undefined {
  if (hep === undefined || hep.targets.length === 0) return undefined;
  return { targets: hep.targets, captureId: hep.id, password: hep.password };
}

function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1';
}

export class HepCapture {
  readonly hook = new CaptureHook();
  private exporter: HepExporter | undefined;
  /** What the last apply logged, so a reload that changed nothing here says nothing. */
  private described = '';

  constructor(
    /** The service's UDP listeners, filled as they open. */
    private readonly udp: readonly UdpListener[],
    private readonly logger: Logger,
  ) {}

  /** Starts, changes or stops the capture; called at start-up once the listeners are open, and by each reload. */
  apply(settings: HepSettings | undefined): void {
    const description =
      settings === undefined ? '' : JSON.stringify([settings.targets.map((t) => t.url), settings.captureId]);
    if (settings === undefined) {
      this.hook.tap = undefined;
      this.exporter?.close();
    } else if (this.exporter === undefined) {
      this.exporter = new HepExporter(settings, (t) => this.listenerFor(t));
      this.hook.tap = this.exporter;
    } else {
      this.exporter.update(settings);
      this.hook.tap = this.exporter;
    }
    if (description === this.described) return;
    this.described = description;
    if (settings === undefined) this.logger.info('HEP capture off');
    else
      this.logger.info(
        { targets: settings.targets.map((t) => t.url), id: settings.captureId },
        `HEP capture to ${settings.targets.map((t) => t.url).join(', ')}`,
      );
  }

  /** Counts for /metrics, zero until capture is first switched on. */
  get stats(): HepStats {
    return this.exporter?.stats ?? { sent: 0, sendErrors: 0 };
  }

  close(): void {
    this.hook.tap = undefined;
    this.exporter?.close();
  }

  /**
   * A native UDP listener of the target's family that can reach it: one bound to a loopback address
   * reaches loopback collectors only. Undefined: the exporter's own socket.
   */
  private listenerFor(t: HepTarget): NativeUdpListener | undefined {
    for (const u of this.udp) {
      if (!(u instanceof NativeUdpListener) || u.address.family !== t.family) continue;
      if (isLoopback(u.address.host) && !isLoopback(t.host)) continue;
      return u;
    }
    return undefined;
  }
}

// HEP export end to end: a call over UDP and one over TLS through the real service, captured by
// Debian's sngrep listening for HEP (-L) and writing a pcap (-O); the pcap read back holds every
// message of both calls, in order, with the right addresses and ports. Then, with a HEP
// receiver of the test's own: capture switched on, changed and off by reloads, and a collector that
// is down costing nothing but a datagram nobody reads.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { trackChild } from '../helpers/child-watchdog.js';
import { certDir, issue, makeCa, type Issuer } from '../helpers/certs.js';
import { readPcap, type PcapPacket } from '../helpers/pcap.js';
import { startPeer } from '../helpers/sip-peer.js';
import { startTestService } from '../helpers/service.js';
import { startTlsService, tlsClient } from '../helpers/tls-service.js';

const sngrepVersion = spawnSync('sngrep', ['-V'], { encoding: 'utf8' });
const sngrep = sngrepVersion.status === 0 && /EEP\/HEP support/.test(sngrepVersion.stdout);
const TITLE = sngrep
  ? 'HEP to sngrep: a UDP call and a TLS call, read back from its pcap'
  : 'HEP to sngrep: skipped, no sngrep with HEP support on this machine (apt-get install sngrep)';

function request(method: string, transport: string, local: string, callId: string, toTag = ''): string {
  return (
    `${method} sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/${transport} ${local};branch=z9hG4bK-${callId}\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=77\r\nTo: <sip:ocschat@contoso.com>${toTag}\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 ${method}\r\nContent-Length: 0\r\n\r\n`
  );
}

/** The To tag of a response, as the ACK of a non-2xx answer repeats it (RFC 3261 §17.1.1.3). */
function toTag(response: string): string {
  return /\r\nTo: [^\r\n]*?(;tag=[^;\r\n]+)/i.exec(response)?.[1] ?? '';
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function until(done: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A UDP client: sends `text` to the service and resolves with the next datagram it gets back. */
function udpClient() {
  const socket = dgram.createSocket('udp4');
  const inbox: string[] = [];
  socket.on('message', (m) => inbox.push(m.toString('latin1')));
  return {
    socket,
    inbox,
    bind: () =>
      new Promise<number>((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket.address().port))),
    send: (text: string, port: number) => socket.send(Buffer.from(text, 'latin1'), port, '127.0.0.1'),
    close: () => socket.close(),
  };
}

/**
 * Where one message was seen going: from, to and its first line. Not the protocol: sngrep writes
 * every message it gets over HEP as UDP in its pcap (test/unit/hep.test.ts checks the chunk).
 */
function seen(p: PcapPacket): string {
  return `${p.source}:${p.sourcePort} > ${p.destination}:${p.destinationPort} ${p.payload.split('\r\n')[0]}`;
}

/** sngrep listening for HEP on a free loopback port, writing what it gets to a pcap file. */
async function startSngrep(work: string, name: string, settings = '') {
  const pcap = join(work, `${name}.pcap`);
  const port = await freeUdpPort();
  const rc = join(work, `${name}.sngreprc`);
  // Its settings from a file of the test's own (-f), never the user's.
  await writeFile(rc, settings);
  // -N: no interface, -q: quiet, -L: listen for HEP, -O: write what it captures to a pcap file.
  const child: ChildProcess = spawn(
    'sngrep',
    ['-f', rc, '-N', '-q', '-L', `udp:127.0.0.1:${port}`, '-O', pcap],
    {
      stdio: 'ignore',
    },
  );
  trackChild(child);
  // Listening once the port is taken.
  await until(
    () => spawnSync('ss', ['-Hlun', `sport = :${port}`], { encoding: 'utf8' }).stdout.trim() !== '',
    () => `sngrep listening on ${port}`,
  );
  return {
    port,
    packets: () => (existsSync(pcap) ? readPcap(pcap) : []),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // sngrep ends on SIGINT (as on Ctrl-C); SIGKILL if it does not.
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(t);
    },
  };
}

describe.skipIf(!sngrep)(TITLE, () => {
  let ca: Issuer;
  let certs: Awaited<ReturnType<typeof certDir>>;
  let work: string;
  const sngreps: Awaited<ReturnType<typeof startSngrep>>[] = [];

  beforeAll(async () => {
    ca = makeCa();
    const server = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
    certs = await certDir();
    await certs.write('server.crt', server.cert);
    await certs.write('server.key', server.key);
    work = await mkdtemp(join(tmpdir(), 'pchat-hep-'));
  });

  afterAll(async () => {
    for (const s of sngreps) await s.stop();
    await certs?.remove();
    await rm(work, { recursive: true, force: true });
  });

  it('holds every message of both calls, in order, with their addresses and ports', async () => {
    const sng = await startSngrep(work, 'calls');
    sngreps.push(sng);
    const hepPort = sng.port;
    const svc = await startTlsService({
      listen: ['udp://127.0.0.1:0', 'tls://127.0.0.1:0'],
      tls: `  cert: ${certs.dir}/server.crt\n  key: ${certs.dir}/server.key\n`,
      extra: `hep:\n  targets: [udp://127.0.0.1:${hepPort}]\n  id: 2001\n`,
    });
    const udp = udpClient();
    try {
      const udpPort = svc.port('udp');
      const tlsPort = svc.port('tls');
      // A call over UDP: INVITE, 302, ACK.
      const local = await udp.bind();
      udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, 'hep-udp-1'), udpPort);
      await until(
        () => udp.inbox.length > 0,
        () => 'a 302 over UDP',
      );
      expect(udp.inbox[0]).toMatch(/^SIP\/2\.0 302 /);
      udp.send(request('ACK', 'UDP', `127.0.0.1:${local}`, 'hep-udp-1', toTag(udp.inbox[0]!)), udpPort);
      // The same over TLS.
      const c = await tlsClient(tlsPort, { ca: ca.cert, servername: 'sip.contoso.com' });
      const tlsLocal = c.socket.localPort!;
      c.socket.write(request('INVITE', 'TLS', `127.0.0.1:${tlsLocal}`, 'hep-tls-1'));
      const answer = await c.waitFor((d) => /^SIP\/2\.0 302 /.test(d));
      c.socket.write(request('ACK', 'TLS', `127.0.0.1:${tlsLocal}`, 'hep-tls-1', toTag(answer)));
      await until(
        () => sng.packets().length >= 6,
        () => `6 messages in the pcap, got ${sng.packets().map(seen).join(' | ')}`,
      );
      c.close();

      const packets = sng.packets();
      expect(packets.map(seen)).toEqual([
        `127.0.0.1:${local} > 127.0.0.1:${udpPort} INVITE sip:ocschat@contoso.com SIP/2.0`,
        `127.0.0.1:${udpPort} > 127.0.0.1:${local} SIP/2.0 302 Moved Temporarily`,
        `127.0.0.1:${local} > 127.0.0.1:${udpPort} ACK sip:ocschat@contoso.com SIP/2.0`,
        `127.0.0.1:${tlsLocal} > 127.0.0.1:${tlsPort} INVITE sip:ocschat@contoso.com SIP/2.0`,
        `127.0.0.1:${tlsPort} > 127.0.0.1:${tlsLocal} SIP/2.0 302 Moved Temporarily`,
        `127.0.0.1:${tlsLocal} > 127.0.0.1:${tlsPort} ACK sip:ocschat@contoso.com SIP/2.0`,
      ]);
      // Each message whole (TLS decrypted), with its Call-ID; capture times never go backwards and
      // are within this test's run.
      expect(packets.map((p) => /\r\nCall-ID: ([^\r]+)/.exec(p.payload)?.[1])).toEqual([
        'hep-udp-1',
        'hep-udp-1',
        'hep-udp-1',
        'hep-tls-1',
        'hep-tls-1',
        'hep-tls-1',
      ]);
      expect(packets[4]!.payload).toMatch(
        /\r\nContact: <sip:ocschat@pcpool\.contoso\.com>\r\n[\s\S]*\r\n\r\n$/,
      );
      const times = packets.map((p) => p.seconds * 1e6 + p.microseconds);
      for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
      expect(Math.abs(times[0]! / 1000 - Date.now())).toBeLessThan(60_000);
      const metrics = await svc.server.metrics.text();
      expect(metrics).toMatch(/^pchat_hep_sent_total 6$/m);
      expect(metrics).toMatch(/^pchat_hep_send_errors_total 0$/m);
    } finally {
      udp.close();
      await svc.stop();
    }
  });

  it('with a password: sngrep takes what carries its password and drops the rest (the password changed by a reload)', async () => {
    const sng = await startSngrep(work, 'password', 'set eep.listen.pass s3cret\n');
    sngreps.push(sng);
    const svc = await startTestService({
      listen: ['udp://127.0.0.1:0'],
      sip: `hep:\n  targets: [udp://127.0.0.1:${sng.port}]\n  password: s3cret\n`,
    });
    const udp = udpClient();
    try {
      const local = await udp.bind();
      const port = svc.port('udp');
      udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, 'with-password'), port);
      await until(
        () => sng.packets().length >= 2,
        () => `2 messages in the pcap, got ${sng.packets().length}`,
      );
      const server = await readFile(join(svc.dir, 'server.yaml'), 'utf8');
      await writeFile(join(svc.dir, 'server.yaml'), server.replace('password: s3cret', 'password: wrong'));
      expect((await svc.server.reload('api')).ok).toBe(true);
      udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, 'wrong-password'), port);
      await until(
        () => udp.inbox.length >= 2,
        () => 'the second 302',
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(sng.packets().map((p) => /\r\nCall-ID: ([^\r]+)/.exec(p.payload)?.[1])).toEqual([
        'with-password',
        'with-password',
      ]);
    } finally {
      udp.close();
      await svc.stop();
    }
  });
});

/** What a HEP datagram says, read by walking its chunks (not by the service's encoder). */
interface Captured {
  readonly protocol: number;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly payload: string;
}

/** A HEP collector of the test's own. */
async function collector() {
  const socket = dgram.createSocket('udp4');
  const captured: Captured[] = [];
  socket.on('message', (m) => {
    if (m.toString('latin1', 0, 4) !== 'HEP3' || m.readUInt16BE(4) !== m.length) return;
    const c = { protocol: 0, sourcePort: 0, destinationPort: 0, payload: '' };
    for (let at = 6; at + 6 <= m.length;) {
      const type = m.readUInt16BE(at + 2);
      const length = m.readUInt16BE(at + 4);
      if (type === 0x02) c.protocol = m[at + 6]!;
      else if (type === 0x07) c.sourcePort = m.readUInt16BE(at + 6);
      else if (type === 0x08) c.destinationPort = m.readUInt16BE(at + 6);
      else if (type === 0x0f) c.payload = m.toString('latin1', at + 6, at + length);
      at += length;
    }
    captured.push(c);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    captured,
    get payloads() {
      return captured.map((c) => c.payload);
    },
    close: () => socket.close(),
  };
}

describe('HEP export of WebSocket traffic', () => {
  it('a SIP message over ws:// and its answer, framing taken off, as TCP between the right ports', async () => {
    const hep = await collector();
    // No UDP listener: the copies leave from a socket of the exporter's own.
    const svc = await startTestService({
      listen: ['ws://127.0.0.1:0'],
      sip: `hep:\n  targets: [udp://127.0.0.1:${hep.port}]\n`,
    });
    const wsPort = svc.server.addresses().find((a) => a.transport === 'ws')!.port;
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}`, 'sip');
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const local = (ws as unknown as { _socket: { localPort: number } })._socket.localPort;
      const answered = new Promise<string>((resolve) =>
        ws.once('message', (d: Buffer) => resolve(d.toString('latin1'))),
      );
      ws.send(request('INVITE', 'WS', 'df7jal23ls0d.invalid', 'hep-ws-1'));
      expect(await answered).toMatch(/^SIP\/2\.0 302 /);
      await until(
        () => hep.captured.length >= 2,
        () => `2 HEP datagrams, got ${hep.captured.length}`,
      );
      expect(
        hep.captured.map((c) => [c.protocol, c.sourcePort, c.destinationPort, c.payload.split('\r\n')[0]]),
      ).toEqual([
        [6, local, wsPort, 'INVITE sip:ocschat@contoso.com SIP/2.0'],
        [6, wsPort, local, 'SIP/2.0 302 Moved Temporarily'],
      ]);
    } finally {
      ws.terminate();
      hep.close();
      await svc.stop();
    }
  });
});

describe('HEP export of proxied traffic', () => {
  it('both legs: the request in over UDP and on to the pool member over TCP, the answer back, the ACKs', async () => {
    const hep = await collector();
    const member = await startPeer('tcp', (req) => (req.method === 'INVITE' ? [{ status: 486 }] : []));
    const svc = await startTestService({
      listen: ['udp://127.0.0.1:0', 'tcp://127.0.0.1:0'],
      sip: `hep:\n  targets: [udp://127.0.0.1:${hep.port}]\n`,
      endpoints:
        'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: proxy\n' +
        `pools:\n  - fqdn: pcpool.contoso.com\n    targets:\n      - uri: sip:127.0.0.1:${member.port};transport=tcp\n`,
    });
    const udp = udpClient();
    try {
      const local = await udp.bind();
      const port = svc.port('udp');
      udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, 'hep-proxy-1'), port);
      await until(
        () => udp.inbox.some((m) => m.startsWith('SIP/2.0 486')),
        () => `a 486, got ${udp.inbox.map((m) => m.split('\r\n')[0]).join(' | ')}`,
      );
      udp.send(
        request(
          'ACK',
          'UDP',
          `127.0.0.1:${local}`,
          'hep-proxy-1',
          toTag(udp.inbox.find((m) => m.startsWith('SIP/2.0 486'))!),
        ),
        port,
      );
      // Each leg's messages in the order they went; the two legs interleave as the timing has it.
      const leg = (p: number) =>
        hep.captured
          .filter((c) => c.sourcePort === p || c.destinationPort === p)
          .map(
            (c) =>
              `${c.protocol === 6 ? 'tcp' : 'udp'} ${c.sourcePort === p ? 'from' : 'to'} ${c.payload.split('\r\n')[0]}`,
          );
      await until(
        () => leg(local).length >= 4 && leg(member.port).length >= 3,
        () => `both legs, got ${JSON.stringify(hep.captured.map((c) => c.payload.split('\r\n')[0]))}`,
      );
      expect(leg(local)).toEqual([
        'udp from INVITE sip:ocschat@contoso.com SIP/2.0',
        'udp to SIP/2.0 100 Trying',
        'udp to SIP/2.0 486 Reason',
        'udp from ACK sip:ocschat@contoso.com SIP/2.0',
      ]);
      expect(leg(member.port)).toEqual([
        'tcp to INVITE sip:ocschat@contoso.com SIP/2.0',
        'tcp from SIP/2.0 486 Reason',
        'tcp to ACK sip:ocschat@contoso.com SIP/2.0',
      ]);
      expect(hep.captured.every((c) => c.payload.includes('\r\nCall-ID: hep-proxy-1\r\n'))).toBe(true);
    } finally {
      udp.close();
      hep.close();
      await member.close();
      await svc.stop();
    }
  });
});

describe('HEP export, applied by a reload', () => {
  it('off, then on to one collector and one that is down, then off again; the calls answered throughout', async () => {
    const svc = await startTestService({ listen: ['udp://127.0.0.1:0'] });
    const hep = await collector();
    const down = await freeUdpPort();
    const udp = udpClient();
    try {
      const port = svc.port('udp');
      const local = await udp.bind();
      const call = async (id: string, answers: number) => {
        udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, id), port);
        await until(
          () => udp.inbox.length >= answers,
          () => `answer ${answers}`,
        );
      };
      await call('before', 1);
      const server = await readFile(join(svc.dir, 'server.yaml'), 'utf8');
      await writeFile(
        join(svc.dir, 'server.yaml'),
        `${server}hep:\n  targets: [udp://127.0.0.1:${hep.port}, udp://127.0.0.1:${down}]\n  id: 7\n`,
      );
      expect((await svc.server.reload('api')).ok).toBe(true);
      await call('during', 2);
      await until(
        () => hep.payloads.length >= 2,
        () => `2 HEP datagrams, got ${hep.payloads.length}`,
      );
      expect(hep.payloads.map((p) => p.split('\r\n')[0])).toEqual([
        'INVITE sip:ocschat@contoso.com SIP/2.0',
        'SIP/2.0 302 Moved Temporarily',
      ]);
      expect(hep.payloads.every((p) => p.includes('\r\nCall-ID: during\r\n'))).toBe(true);
      // The collector that is down got its copies too (nobody read them): two per message, no error.
      const metrics = await svc.server.metrics.text();
      expect(metrics).toMatch(/^pchat_hep_sent_total 4$/m);
      expect(metrics).toMatch(/^pchat_hep_send_errors_total 0$/m);
      await writeFile(join(svc.dir, 'server.yaml'), server);
      expect((await svc.server.reload('api')).ok).toBe(true);
      await call('after', 3);
      await new Promise((r) => setTimeout(r, 200));
      expect(hep.payloads).toHaveLength(2);
      expect(
        svc.lines.map((l) => l.msg).filter((m) => typeof m === 'string' && m.startsWith('HEP capture')),
      ).toEqual([`HEP capture to udp://127.0.0.1:${hep.port}, udp://127.0.0.1:${down}`, 'HEP capture off']);
    } finally {
      udp.close();
      hep.close();
      await svc.stop();
    }
  });
});

describe('HEP export and the rate limit', () => {
  it('a response that matches no transaction of ours is not copied: stray answers cost the collector nothing', async () => {
    const hep = await collector();
    const svc = await startTestService({
      listen: ['udp://127.0.0.1:0'],
      sip: `hep:\n  targets: [udp://127.0.0.1:${hep.port}]\n`,
    });
    const udp = udpClient();
    try {
      const local = await udp.bind();
      const port = svc.port('udp');
      for (let i = 0; i < 20; i++)
        udp.send(
          request('INVITE', 'UDP', `127.0.0.1:${local}`, `stray-${i}`).replace(
            /^INVITE sip:ocschat@contoso.com SIP\/2\.0/,
            'SIP/2.0 200 OK',
          ),
          port,
        );
      // One request after them, answered: its copies arriving means the strays were handled before.
      udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, 'after-strays'), port);
      await until(
        () => hep.captured.length >= 2,
        () => `2 HEP datagrams, got ${hep.captured.length}`,
      );
      await new Promise((r) => setTimeout(r, 200));
      expect(hep.payloads.map((p) => p.split('\r\n')[0])).toEqual([
        'INVITE sip:ocschat@contoso.com SIP/2.0',
        'SIP/2.0 302 Moved Temporarily',
      ]);
    } finally {
      udp.close();
      hep.close();
      await svc.stop();
    }
  });

  it('what the rate limit drops is not copied: a flood from one source costs the collector no more than what was answered', async () => {
    const hep = await collector();
    const svc = await startTestService({
      listen: ['udp://127.0.0.1:0'],
      sip:
        `hep:\n  targets: [udp://127.0.0.1:${hep.port}]\n` +
        'limits:\n  rate:\n    requests: 5\n    window: 60000\n    ban: 60000\n',
    });
    const udp = udpClient();
    try {
      const local = await udp.bind();
      const port = svc.port('udp');
      for (let i = 0; i < 30; i++)
        udp.send(request('INVITE', 'UDP', `127.0.0.1:${local}`, `flood-${i}`), port);
      await until(
        () => svc.server.guard.stats.rateLimited === 25,
        () => `25 rate limited, got ${svc.server.guard.stats.rateLimited}`,
      );
      await until(
        () => hep.captured.length >= 10,
        () => `10 HEP datagrams, got ${hep.captured.length}`,
      );
      // Give any copy of a dropped request the time to arrive before counting.
      await new Promise((r) => setTimeout(r, 300));
      const firstLines = hep.payloads.map((p) => p.split('\r\n')[0]!);
      expect(udp.inbox).toHaveLength(5);
      expect(firstLines.filter((l) => l.startsWith('INVITE '))).toHaveLength(5);
      expect(firstLines.filter((l) => l.startsWith('SIP/2.0 302 '))).toHaveLength(5);
    } finally {
      udp.close();
      hep.close();
      await svc.stop();
    }
  });
});

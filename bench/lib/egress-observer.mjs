// Preloaded into the service under test (node --import) by bench/fuzz.mjs: records every destination
// the process sends a datagram to or opens a connection to, and tells the parent over the IPC channel,
// once per distinct destination. It wraps the three ways out of the process (node:dgram sends, the
// service's own UDP binding's send, and net.Socket connect, which tls.connect and ws use too), so it
// sees what the service really sends, whichever code path sent it, without a hook in src/.
//
// Sends and connects to a host name are refused here (and reported): a test never asks the system
// resolver, and the service never has a reason to send to a name a peer wrote.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import net from 'node:net';

if (typeof process.send !== 'function') throw new Error('egress-observer: run with an IPC channel');

/** Distinct destinations reported; past this many the observer reports only that it stopped. */
const MAX_DESTINATIONS = 100_000;
const seen = new Set();
let pending = [];
let flushing = false;
let observed = 0;

function flush() {
  flushing = false;
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  process.send({ egress: batch, observed });
}

/** The start of what was sent, as text, to show with a new destination. */
function head(data) {
  const first = Array.isArray(data) ? data[0] : data;
  if (typeof first === 'string') return first.slice(0, 300);
  if (first instanceof Uint8Array)
    return Buffer.from(first.buffer, first.byteOffset, Math.min(300, first.byteLength)).toString('latin1');
  return undefined;
}

function record(kind, address, port, data) {
  observed++;
  const key = `${kind} ${address} ${port}`;
  if (seen.has(key) || seen.size >= MAX_DESTINATIONS) return;
  seen.add(key);
  pending.push({ key, sent: head(data) });
  if (!flushing) {
    flushing = true;
    setTimeout(flush, 20).unref();
  }
}

// node:dgram: send(msg, [offset, length,] port[, address][, callback]); a connected socket omits both.
const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function observedSend(...args) {
  const long = typeof args[1] === 'number' && typeof args[2] === 'number';
  const port = long ? args[3] : args[1];
  let address = long ? args[4] : args[2];
  if (typeof port === 'number') {
    if (typeof address !== 'string') address = this.type === 'udp6' ? '::1' : '127.0.0.1';
    record('udp', address, port, args[0]);
    if (isIP(address) === 0) {
      const cb = args.findLast((a) => typeof a === 'function');
      process.nextTick(() =>
        cb?.(Object.assign(new Error(`egress-observer: no lookup of ${address}`), { code: 'ENOTFOUND' })),
      );
      return;
    }
  }
  return send.apply(this, args);
};

// net.Socket connect: net.connect and tls.connect pass normalised arguments ([options, cb]), a
// direct call passes (options[, cb]) or (port[, host][, cb]).
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function observedConnect(...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const options = typeof first === 'object' && first !== null ? first : { port: first, host: args[1] };
  if (options.path === undefined && options.port !== undefined) {
    const host = typeof options.host === 'string' ? options.host : 'localhost';
    record('tcp', host, Number(options.port));
    if (isIP(host) === 0) {
      process.nextTick(() =>
        this.destroy(
          Object.assign(new Error(`egress-observer: no lookup of ${host}`), { code: 'ENOTFOUND' }),
        ),
      );
      return this;
    }
  }
  return connect.apply(this, args);
};

// The service's own UDP binding (native/udp.c), loaded with require: its exports are wrapped as it loads.
const dlopen = process.dlopen;
process.dlopen = function observedDlopen(module, filename, ...rest) {
  const result = dlopen.call(this, module, filename, ...rest);
  if (/pchat_udp\.node$/.test(String(filename)) && typeof module.exports?.send === 'function') {
    const binding = module.exports;
    // The addon's functions are not enumerable own properties: inherit them, replace send.
    module.exports = Object.create(binding, {
      send: {
        value(handle, data, port, address) {
          record('udp', address, port, data);
          // ENETUNREACH rather than the binding's EINVAL, on which the service would ask the resolver.
          if (isIP(address) === 0) return -101;
          return binding.send(handle, data, port, address);
        },
      },
    });
  }
  return result;
};

// The channel must not keep the service alive, and a parent that went away must not crash it.
process.channel?.unref();
process.on('disconnect', () => undefined);

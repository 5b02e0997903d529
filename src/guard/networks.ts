// Source networks for allow lists and rate-limit exemptions: CIDR blocks (IPv4 and IPv6, a bare
// address meaning one host) matched with ipaddr.js, with IPv4-mapped IPv6 peers seen as IPv4.
import ipaddr from 'ipaddr.js';

// Networks are validated by the configuration schema (networkProblem) before they get here.
export { networkProblem } from '../config/schema.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** Parses a source address; IPv4-mapped IPv6 (::ffff:10.1.2.3 from a dual-stack socket) becomes IPv4. */
function parseAddress(text: string): Address | undefined {
  try {
    return ipaddr.process(text);
  } catch {
    return undefined;
  }
}

export class NetworkList {
  private readonly ranges: Array<[Address, number]>;

  /** `networks` must have passed networkProblem (the configuration schema checks them). */
  constructor(readonly networks: readonly string[]) {
    this.ranges = networks.map((n) => {
      if (n.includes('/')) return ipaddr.parseCIDR(n);
      const a = ipaddr.parse(n);
      return [a, a.kind() === 'ipv4' ? 32 : 128];
    });
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** True when `address` (as a socket reports it) is inside one of the networks. */
  has(address: string): boolean {
    const a = parseAddress(address);
    if (a === undefined) return false;
    for (const [net, bits] of this.ranges) {
      // ipaddr.js throws when asked to match across families; such a range simply does not apply.
      if (net.kind() === a.kind() && a.match(net, bits)) return true;
    }
    return false;
  }
}

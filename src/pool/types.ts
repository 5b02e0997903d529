// What the pool layer hands the proxy core: concrete next hops (transport, address, port), and the
// narrow DNS interface it resolves them through, so tests inject a fake or a local DNS server.

/** The transports a pool member is reached over. */
export type TargetTransport = 'udp' | 'tcp' | 'tls';

/** One concrete next hop for a pool. */
export interface Target {
  readonly transport: TargetTransport;
  /** The name or IP literal the address was found under (SRV target, static URI host, pool FQDN). */
  readonly host: string;
  /** An IPv4 or IPv6 address, without brackets. */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** `${transport}:${address}:${port}`: stable across resolutions and reloads; health is keyed by it. */
  readonly id: string;
  /** `static` when configured under the pool's targets, `dns` when found by RFC 3263 resolution. */
  readonly source: 'static' | 'dns';
}

/** A NAPTR answer (RFC 3403). `ttl` in seconds when the resolver reports it (node:dns does not). */
export interface NaptrRecord {
  readonly flags: string;
  readonly service: string;
  readonly regexp: string;
  readonly replacement: string;
  readonly order: number;
  readonly preference: number;
  readonly ttl?: number;
}

/** An SRV answer (RFC 2782). `ttl` in seconds when the resolver reports it (node:dns does not). */
export interface SrvRecord {
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  readonly ttl?: number;
}

/** An A or AAAA answer with its TTL in seconds. */
export interface AddressRecord {
  readonly address: string;
  readonly ttl: number;
}

/**
 * The DNS queries pool resolution makes. A `node:dns/promises` Resolver satisfies it. "No such name"
 * and "no records of that type" are rejections with code ENOTFOUND / ENODATA, as in node:dns.
 */
export interface DnsLike {
  resolveNaptr(name: string): Promise<NaptrRecord[]>;
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(name: string, options: { ttl: true }): Promise<AddressRecord[]>;
  resolve6(name: string, options: { ttl: true }): Promise<AddressRecord[]>;
}

/** The port a transport uses when DNS gives none: RFC 3261 §19.1.2, 5061 for TLS, 5060 otherwise. */
export function defaultPort(transport: TargetTransport): number {
  return transport === 'tls' ? 5061 : 5060;
}

export function targetId(transport: TargetTransport, address: string, port: number): string {
  return `${transport}:${address}:${String(port)}`;
}

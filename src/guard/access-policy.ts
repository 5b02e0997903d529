// Who may send requests to one listener: an allow list of source networks and/or client-certificate
// subjects and subject alternative names (MTLS). Anyone else is refused: 403 or dropped, as configured.
import type { PeerCertificate, Source } from '../transport/types.js';
import { NetworkList } from './networks.js';

export interface AccessRules {
  /** CIDR blocks or single addresses; empty: the network alone admits nobody. */
  readonly networks: readonly string[];
  /**
   * Certificate names: a whole subject DN ("CN=fe01.contoso.com,O=Contoso"), a common name or SAN
   * ("fe01.contoso.com", case-insensitive), or a wildcard for every name under a domain ("*.contoso.com").
   */
  readonly certificates: readonly string[];
}

export class AccessPolicy {
  private readonly networks: NetworkList;
  private readonly exact: ReadonlySet<string>;
  private readonly suffixes: readonly string[];

  constructor(rules: AccessRules) {
    this.networks = new NetworkList(rules.networks);
    const exact = new Set<string>();
    const suffixes: string[] = [];
    for (const c of rules.certificates) {
      const name = normaliseName(c);
      if (name.startsWith('*.')) suffixes.push(name.slice(1));
      else exact.add(name);
    }
    this.exact = exact;
    this.suffixes = suffixes;
  }

  /** True when the source's address or its certificate is on the list. */
  allows(source: Source): boolean {
    if (!this.networks.empty && this.networks.has(source.address)) return true;
    const cert = source.peerCertificate;
    if (cert === undefined || (this.exact.size === 0 && this.suffixes.length === 0)) return false;
    for (const name of certificateNames(cert)) {
      if (this.exact.has(name)) return true;
      for (const s of this.suffixes) if (name.endsWith(s) && name.length > s.length) return true;
    }
    return false;
  }

  /** True when the source's address alone is on the list (a TCP connection before any request). */
  allowsNetwork(address: string): boolean {
    return !this.networks.empty && this.networks.has(address);
  }

  /** True when certificate names are listed, so a peer outside the networks may still qualify. */
  get namesCertificates(): boolean {
    return this.exact.size > 0 || this.suffixes.length > 0;
  }
}

/** DN attribute spacing and case vary between tools; names compare case-insensitively (RFC 4343). */
function normaliseName(text: string): string {
  return text
    .trim()
    .replace(/\s*([,=])\s*/g, '$1')
    .toLowerCase();
}

/** Every name a certificate can be admitted by: the subject DN, its common name, its SANs. */
export function certificateNames(cert: PeerCertificate): string[] {
  const names = [normaliseName(cert.subject)];
  if (cert.commonName !== undefined) names.push(normaliseName(cert.commonName));
  else
    for (const m of cert.subject.matchAll(/(?:^|[,/])\s*CN\s*=\s*([^,/]+)/gi))
      names.push(normaliseName(m[1] ?? ''));
  // "DNS:fe01.contoso.com" and "fe01.contoso.com" alike: the type prefix is not part of the name.
  for (const s of cert.san) names.push(normaliseName(s.replace(/^\s*(?:DNS|URI|IP Address|email):/i, '')));
  return names.filter((n) => n !== '');
}

// How a host and port are written together: in a Via sent-by, a URI's hostport (RFC 3261 §25.1),
// a listener's id and the URLs and messages shown to operators.

/** `host:port`, an IPv6 address in brackets (RFC 3986 §3.2.2 IP-literal): `[::1]:5060`. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

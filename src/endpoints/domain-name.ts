// Domain names as the endpoint table uses them: the pool FQDN and the domain of a well-known address.

// RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ]; a top label starts with a letter,
// which is also what tells a name from an IPv4 address.
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const TOP_LABEL = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
// RFC 1035 §2.3.4: 255 octets on the wire, which leaves 253 characters in text form.
const MAX_NAME_LENGTH = 253;

/**
 * Why `name` is not a fully qualified domain name (at least two labels, no address literal), or
 * `undefined` when it is one. A single trailing dot (the absolute form) is accepted.
 */
export function domainNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.startsWith('[') || name.includes(':') || IPV4.test(name)) {
    return 'is an IP address, expected a domain name';
  }
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  const labels = bare.split('.');
  if (labels.length < 2) return 'is not fully qualified (expected at least two labels, e.g. contoso.com)';
  for (const [i, label] of labels.entries()) {
    if (label === '') return 'has an empty label';
    if (label.length > 63) return `has a label longer than 63 characters ("${label.slice(0, 16)}...")`;
    const top = i === labels.length - 1;
    if (!(top ? TOP_LABEL : DOMAIN_LABEL).test(label)) {
      return top
        ? `has an invalid top label "${label}" (letters, digits and inner hyphens, starting with a letter)`
        : `has an invalid label "${label}" (letters, digits and inner hyphens only)`;
    }
  }
  return undefined;
}

/** The form in which two domain names are compared: lower case, without the trailing dot. */
export function domainNameKey(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

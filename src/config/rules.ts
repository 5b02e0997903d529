// Rules that span entries of endpoints.yaml (an address defined twice, a pool listed twice, a pool no
// endpoint uses), checked on the raw document so they are reported even when other fields are wrong.
import { domainNameKey } from '../endpoints/domain-name.js';
import { aorKeyFromText } from '../sip/uri.js';
import type { ConfigIssue } from './errors.js';
import { isRecord } from './issues.js';
import { endpointSchema, poolSchema } from './schema.js';
import type { YamlSource } from './yaml-source.js';

export interface RuleFindings {
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

const validAddress = (v: unknown): v is string => endpointSchema.shape.sipAddress.safeParse(v).success;
const validPoolFqdn = (v: unknown): v is string => endpointSchema.shape.poolFqdn.safeParse(v).success;
const validPoolName = (v: unknown): v is string => poolSchema.shape.fqdn.safeParse(v).success;

export function endpointsRules(source: YamlSource): RuleFindings {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const data = source.data;
  if (!isRecord(data)) return { issues, warnings };

  const usedPools = new Set<string>();
  // Left empty (`endpoints:`), the list reads as empty, as the schema reads it.
  const endpoints = data.endpoints === null ? [] : data.endpoints;
  if (Array.isArray(endpoints)) {
    if (endpoints.length === 0) {
      warnings.push(
        source.issue(['endpoints'], 'no endpoints: every request will be answered 404 Not Found'),
      );
    }
    // The table is keyed by the canonical address-of-record, so so is the duplicate check:
    // sip:OCSChat@contoso.com and sip:ocschat@contoso.com are one address.
    const addresses = new Map<string, { index: number; text: string }>();
    for (const [index, entry] of (endpoints as unknown[]).entries()) {
      if (!isRecord(entry)) continue;
      const text = entry.sipAddress;
      const key = validAddress(text) ? aorKeyFromText(text) : undefined;
      if (typeof text === 'string' && key !== undefined) {
        const first = addresses.get(key);
        if (first === undefined) {
          addresses.set(key, { index, text });
        } else {
          const line = source.lineOf(['endpoints', first.index, 'sipAddress']);
          const alias = first.text === text ? '' : ` as ${first.text}`;
          issues.push(
            source.issue(
              ['endpoints', index, 'sipAddress'],
              `duplicate address ${text} (first defined at line ${line}${alias})`,
            ),
          );
        }
      }
      if (validPoolFqdn(entry.poolFqdn)) usedPools.add(domainNameKey(entry.poolFqdn));
      const mode = entry.mode ?? 'proxy';
      if (entry.lookupUris !== undefined && typeof mode === 'string' && mode !== 'lookup') {
        warnings.push(
          source.issue(
            ['endpoints', index, 'lookupUris'],
            `ignored: only used in mode lookup (mode is ${mode})`,
            'key',
          ),
        );
      }
    }
  }

  if (Array.isArray(data.pools)) {
    const pools = new Map<string, number>();
    for (const [index, entry] of (data.pools as unknown[]).entries()) {
      if (!isRecord(entry) || !validPoolName(entry.fqdn)) continue;
      const key = domainNameKey(entry.fqdn);
      const first = pools.get(key);
      if (first !== undefined) {
        const line = source.lineOf(['pools', first, 'fqdn']);
        issues.push(
          source.issue(['pools', index, 'fqdn'], `duplicate pool ${key} (first defined at line ${line})`),
        );
        continue;
      }
      pools.set(key, index);
      // Allowed so a pool can be prepared before its endpoints move to it, but worth a word.
      if (!usedPools.has(key)) {
        warnings.push(source.issue(['pools', index, 'fqdn'], `pool ${key} is not used by any endpoint`));
      }
    }
  }
  return { issues, warnings };
}

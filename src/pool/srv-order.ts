// RFC 2782 target selection: SRV records in priority order, weighted random within a priority.

import type { SrvRecord } from './types.js';

/** A uniform random number in [0, 1), as Math.random; injected so tests can pin the order down. */
export type RandomSource = () => number;

/**
 * The order in which to try `records`. The input is not modified.
 *
 * RFC 2782: "A client MUST attempt to contact the target host with the lowest-numbered priority it
 * can reach; target hosts with the same priority SHOULD be tried in an order defined by the weight
 * field."
 */
export function orderSrv<T extends Pick<SrvRecord, 'priority' | 'weight'>>(
  records: readonly T[],
  random: RandomSource = Math.random,
): T[] {
  if (records.length <= 1) return records.slice();
  const byPriority = records.slice().sort((a, b) => a.priority - b.priority);
  const out: T[] = [];
  let i = 0;
  while (i < byPriority.length) {
    let j = i + 1;
    while (j < byPriority.length && byPriority[j]!.priority === byPriority[i]!.priority) j++;
    weightedShuffle(byPriority.slice(i, j), random, out);
    i = j;
  }
  return out;
}

/** Appends `group` (one priority) to `out` in RFC 2782 weighted-random order. */
function weightedShuffle<T extends Pick<SrvRecord, 'weight'>>(
  group: T[],
  random: RandomSource,
  out: T[],
): void {
  // RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any order, except that all
  // those with weight 0 are placed at the beginning of the list."
  const left = group.filter((r) => r.weight <= 0).concat(group.filter((r) => r.weight > 0));
  while (left.length > 1) {
    let sum = 0;
    for (const r of left) sum += Math.max(0, r.weight);
    // RFC 2782: "choose a uniform random number between 0 and the sum computed (inclusive), and select
    // the RR whose running sum value is the first in the selected order which is greater than or
    // equal to the random number selected."
    const pick = Math.floor(random() * (sum + 1));
    let running = 0;
    let chosen = left.length - 1;
    for (let k = 0; k < left.length; k++) {
      running += Math.max(0, left[k]!.weight);
      if (running >= pick) {
        chosen = k;
        break;
      }
    }
    // RFC 2782: "Remove this SRV RR from the set of the unordered SRV RRs and apply the described
    // algorithm to the unordered SRV RRs to select the next target host."
    out.push(left.splice(chosen, 1)[0]!);
  }
  if (left.length === 1) out.push(left[0]!);
}

// Which pool member each final response of srf.proxyRequest came from (src/drachtio/proxy.ts
// attributeFinals), given drachtio-srf's grouping: a new group only when the address changes or the
// port stays the same, so finals of members on one address with other ports share a group.
import { describe, expect, it } from 'vitest';
import { attributeFinals } from '../../src/drachtio/proxy.js';
import type { ProxyResults } from '../../src/drachtio/srf.js';

const A = { address: '127.0.0.1', port: 5001 };
const B = { address: '127.0.0.1', port: 5002 };
const C = { address: '10.0.0.3', port: 5060 };

function results(finalStatus: number | undefined, groups: [typeof A, number[]][]): ProxyResults {
  return {
    connected: finalStatus === 200,
    ...(finalStatus === undefined ? {} : { finalStatus }),
    responses: groups.map(([t, statuses]) => ({ ...t, msgs: statuses.map((status) => ({ status })) })),
  };
}

describe('attributeFinals', () => {
  it('503 from the first member, then 200 from the second on the same address (one group): in order', () => {
    expect(attributeFinals(results(200, [[A, [503, 200]]]), [A, B])).toEqual([
      { index: 0, status: 503 },
      { index: 1, status: 200 },
    ]);
  });

  it('the first member silent (passed over on the provisional timeout), the second answers: the first did not answer', () => {
    expect(attributeFinals(results(200, [[B, [200]]]), [A, B])).toEqual([
      { index: 0, status: undefined },
      { index: 1, status: 200 },
    ]);
  });

  it('members on other addresses get groups of their own, each read by its address', () => {
    expect(
      attributeFinals(
        results(200, [
          [A, [503]],
          [C, [200]],
        ]),
        [A, B, C],
      ),
    ).toEqual([
      { index: 0, status: 503 },
      { index: 1, status: undefined },
      { index: 2, status: 200 },
    ]);
  });

  it('provisional responses say nothing of the member', () => {
    expect(attributeFinals(results(200, [[A, [100, 180, 200]]]), [A, B])).toEqual([
      { index: 0, status: 200 },
    ]);
  });

  it('no final from any member and drachtio answered 408: every member was passed over', () => {
    expect(attributeFinals(results(408, []), [A, B])).toEqual([
      { index: 0, status: undefined },
      { index: 1, status: undefined },
    ]);
  });

  it('no final because the client cancelled (a 487 of drachtio itself): nothing is learnt', () => {
    expect(attributeFinals(results(487, []), [A, B])).toEqual([]);
  });

  it('more finals than members (a redirect followed) are not put on members that were not tried', () => {
    expect(attributeFinals(results(200, [[A, [302, 200]]]), [A])).toEqual([{ index: 0, status: 302 }]);
  });
});

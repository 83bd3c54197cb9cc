import assert from 'node:assert/strict';
import { nonce } from '../../lib/nonce.js';

describe('nonces (pure)', () => {
  it('are 16 base64url characters and do not repeat, across refills of the buffer', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const n = nonce();
      assert.match(n, /^[A-Za-z0-9_-]{16}$/);
      seen.add(n);
    }
    assert.equal(seen.size, 5_000);
  });
});

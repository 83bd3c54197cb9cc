import { randomFillSync } from 'node:crypto';

// 12 random bytes per acquisition (96 bits: never equal by chance), as 16
// base64url characters. Drawn from a buffer refilled 4 KB at a time: one call
// into the system's random source per ~340 nonces instead of one each, on the
// path every acquire takes.
const SIZE = 12;
const pool = Buffer.alloc(SIZE * 341);
let offset = pool.length;

/** A fresh random nonce. */
export function nonce(): string {
  if (offset + SIZE > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const n = pool.toString('base64url', offset, offset + SIZE);
  offset += SIZE;
  return n;
}

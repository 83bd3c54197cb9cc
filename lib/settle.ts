// Settling a write whose reply was lost: was it applied? Pure functions over
// the re-read document; the nonce of the operation is what recognises it.
import { entryOf, groupOf, type Entry, type LockDocument } from './document.js';
import { isExpired, type ReleaseOutcome } from './transitions.js';

/**
 * For an acquire that lost the reply of one or more writes (`lost`: nonce →
 * the version each write was to replace): the nonce that now holds every name,
 * unexpired, if one does. A lost write that holds the names is our acquisition,
 * whenever it landed. Forgets the lost writes that can no longer apply: the
 * version has moved past the one they compared against and nothing of theirs
 * is in the document.
 */
/** The entry `nonce` holds under `name`: the exclusive one, or its holder entry in the name's group. */
export function heldUnder(doc: LockDocument, name: string, nonce: string): Entry | undefined {
  const held = entryOf(doc, name);
  if (held?.n === nonce) return held;
  const group = groupOf(doc, name);
  const share = group?.h.find((h) => h.n === nonce);
  return share && { ...share, t: group!.t };
}

export function settleLost(
  doc: LockDocument,
  snap: { version: number; now: number },
  names: readonly string[],
  lost: Map<string, number>,
): string | undefined {
  for (const nonce of lost.keys()) {
    if (names.every((n) => {
      const held = heldUnder(doc, n, nonce);
      return held !== undefined && !isExpired(held, snap.now);
    })) return nonce;
  }
  for (const [nonce, expected] of lost) {
    if (snap.version > expected && !names.some((n) => heldUnder(doc, n, nonce))) lost.delete(nonce);
  }
  return undefined;
}

/**
 * For a release whose reply was lost: released when none of the lease's
 * entries is left and nothing records that someone else removed one (a
 * tombstone with its nonce: then it was wiped, reaped or expired before our
 * write, and release() must say so). Undefined means "run the release again",
 * which removes what is still ours and reports the rest.
 */
export function confirmRelease(doc: LockDocument, names: readonly string[], nonce: string): ReleaseOutcome | undefined {
  if (names.some((n) => heldUnder(doc, n, nonce))) return undefined;
  if (names.some((n) => doc.r?.some((t) => t.k === n && t.n === nonce))) return undefined;
  return { doc, released: [...names], missing: [] };
}

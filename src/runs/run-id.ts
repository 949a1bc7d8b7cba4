/**
 * Run ids: `r` + a ULID (48-bit millisecond time + 80 random bits, Crockford base32). Sorting
 * ids sorts runs by creation time, which `runs list` relies on; ids made in the same millisecond
 * still sort in creation order (the random part is incremented, as ULID's monotonic mode does).
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastTime = -1;
let lastRandom: number[] = [];

function encodeTime(time: number): string {
  let out = '';
  let rest = time;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function freshRandom(): number[] {
  return [...randomBytes(16)].map((byte) => byte % 32);
}

function increment(digits: number[]): number[] {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    const digit = next[i] ?? 0;
    if (digit < 31) {
      next[i] = digit + 1;
      return next;
    }
    next[i] = 0;
  }
  return freshRandom(); // 32^16 ids in one millisecond: not reachable in practice
}

export function newRunId(now: number = Date.now()): string {
  if (now <= lastTime) {
    lastRandom = increment(lastRandom);
  } else {
    lastTime = now;
    lastRandom = freshRandom();
  }
  return `r${encodeTime(lastTime)}${lastRandom.map((digit) => ALPHABET[digit]).join('')}`;
}

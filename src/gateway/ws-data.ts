/**
 * What a `ws` message arrives as (`RawData`: a Buffer, an ArrayBuffer or, fragmented, a list of
 * Buffers), read as text and measured. Shared by every WebSocket peer in the package.
 */
import type { RawData } from 'ws';

/** The message as UTF-8 text. */
export function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString();
  return data.toString();
}

/** Its size on the wire, in bytes. */
export function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0);
  return data.byteLength;
}

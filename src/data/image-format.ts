// Image formats by their first bytes (magic numbers): what the download keeps, what synth finds already written,
// what serve accepts as an upload.

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif';

/** The formats `ctl data synth --images` paints in. */
export const SYNTH_IMAGE_FORMATS = ['jpeg', 'png'] as const satisfies readonly ImageFormat[];
export type SynthImageFormat = (typeof SYNTH_IMAGE_FORMATS)[number];

/** The image format from the first bytes, or undefined. */
export function sniffFormat(head: Uint8Array): ImageFormat | undefined {
  const at = (offset: number, ascii: string) =>
    head.length >= offset + ascii.length && [...ascii].every((c, i) => head[offset + i] === c.charCodeAt(0));
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 8 && head[0] === 0x89 && at(1, 'PNG\r\n\x1a\n')) return 'png';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'webp';
  if (at(0, 'GIF87a') || at(0, 'GIF89a')) return 'gif';
  return undefined;
}

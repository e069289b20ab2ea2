// The progress line: redrawn within the terminal's width (a wrapped line leaves its first rows behind at every
// redraw), whole in a log and on its final draw.
import { describe, expect, it, vi } from 'vitest';
import { log } from '../src/util/log.js';
import { Progress } from '../src/util/progress.js';

function terminal(columns: number) {
  const writes: string[] = [];
  return {
    writes,
    stream: { isTTY: true, columns, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream,
  };
}

describe('Progress', () => {
  it('redraws within the terminal width, and ends with the whole line', () => {
    const { writes, stream } = terminal(40);
    const progress = new Progress('epoch 1/50', 1000, { stream, unit: 'samples' });
    progress.tick(10, 'loss 4.229 (nce 4.100 trip 0.129) lr 3.0e-4 τ 0.070');
    expect(writes).toHaveLength(1);
    expect(writes[0].startsWith('\r\x1b[2Kepoch 1/50 [')).toBe(true);
    expect(writes[0].length - '\r\x1b[2K'.length).toBe(39);
    progress.finish();
    expect(writes[1].startsWith('\r\x1b[2Kepoch 1/50 [')).toBe(true);
    expect(writes[1].endsWith(' loss 4.229 (nce 4.100 trip 0.129) lr 3.0e-4 τ 0.070\n')).toBe(true);
  });

  it('writes whole lines to a log', () => {
    const writes: string[] = [];
    const stream = { isTTY: false, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const progress = new Progress('embed', 10, { stream, logEvery: 0 });
    progress.tick(5, 'ok 5');
    expect(writes[0]).toMatch(/^embed 5\/10 \(50\.0%\) .*ETA .* {2}ok 5\n$/);
  });

  it('without a total (a download without a Content-Length) shows the count and rate, no share, bar or ETA', () => {
    const { writes, stream } = terminal(200);
    const progress = new Progress('fashion.json', undefined, { stream, unit: 'B' });
    progress.tick(7050);
    progress.finish();
    const lines = writes.map((w) => w.replace('\r\x1b[2K', ''));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^fashion\.json 7050 B, [\d.]+ B\/s, elapsed \d+s$/);
    expect(lines[1]).toMatch(/^fashion\.json 7050 B, [\d.]+ B\/s, elapsed \d+s\n$/);
  });

  it('a log line while the bar is drawn on stderr clears the bar first, instead of running on after it', () => {
    const writes: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((s) => writes.push(String(s)) > 0);
    try {
      const progress = new Progress('epoch 1/2', 100, { stream: process.stderr, tty: true });
      progress.tick(10, 'loss 1.0');
      log('mined negatives at step 10');
      log('and a second line');
      progress.tick(10); // the bar comes back below them at its next redraw
      progress.finish();
      log('done');
      expect(writes[0].startsWith('\r\x1b[2Kepoch 1/2 [')).toBe(true);
      expect(writes.slice(1, 3)).toEqual(['\r\x1b[2Kmined negatives at step 10\n', 'and a second line\n']);
      expect(writes.at(-1)).toBe('done\n');
    } finally {
      write.mockRestore();
    }
  });
});

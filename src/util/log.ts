// Human text goes to stderr, so `--json` leaves stdout to exactly one JSON document.

/** Is a progress bar's line open on stderr (a terminal, no newline yet)? A log line clears it first; the bar comes
 * back below at its next redraw. */
let barLineOpen = false;

export function setBarLineOpen(open: boolean): void {
  barLineOpen = open;
}

export function log(message: string): void {
  process.stderr.write(`${barLineOpen ? '\r\x1b[2K' : ''}${message}\n`);
  barLineOpen = false;
}

/** Print the one JSON document of a `--json` command. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

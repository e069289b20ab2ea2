// A progress reporter for long work: a redrawn bar with rate and ETA on a TTY, a plain log line every few
// seconds otherwise (CI logs, `nohup`), so both a person and a log file can follow a run.
import { formatDuration, setBarLineOpen } from './log.js';

export interface ProgressOptions {
  /** What is being counted, e.g. "images". */
  unit?: string;
  /** Seconds between log lines when stderr is not a TTY. */
  logEvery?: number;
  /** Force TTY or plain mode (tests). Default: stderr.isTTY. */
  tty?: boolean;
  stream?: NodeJS.WriteStream;
}

export class Progress {
  private done = 0;
  private readonly start = performance.now();
  private lastDraw = 0;
  private extra = '';
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly unit: string;
  private readonly logEveryMs: number;

  constructor(
    private readonly label: string,
    /** undefined: not known (a download without a Content-Length). */
    private total: number | undefined,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean(this.stream.isTTY);
    this.unit = options.unit ?? 'items';
    this.logEveryMs = (options.logEvery ?? 5) * 1000;
  }

  /** Advance by `n`; `extra` is shown after the counts (e.g. "ok 120 failed 3" or "loss 1.23"). */
  tick(n = 1, extra?: string): void {
    this.done += n;
    if (extra !== undefined) this.extra = extra;
    const now = performance.now();
    if (now - this.lastDraw >= (this.tty ? 100 : this.logEveryMs)) this.draw(now);
  }

  setTotal(total: number): void {
    this.total = total;
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.start) / 1000;
  }

  get rate(): number {
    return this.done / Math.max(this.elapsedSeconds, 1e-9);
  }

  /** The current line, without drawing it. */
  line(): string {
    const rate = this.rate;
    const rateText = rate >= 100 ? rate.toFixed(0) : rate.toFixed(1);
    const timing = `${rateText} ${this.unit}/s, elapsed ${formatDuration(this.elapsedSeconds)}`;
    const extra = this.extra ? `  ${this.extra}` : '';
    // Without a total there is no share, bar or ETA to show: the count so far and its rate.
    if (this.total === undefined) return `${this.label} ${this.done} ${this.unit}, ${timing}${extra}`;
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    const pct = this.total > 0 ? Math.min(100, (100 * this.done) / this.total) : 100;
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const bar = this.tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
    return `${this.label} ${bar}${this.done}/${this.total} (${pct.toFixed(1)}%) ${timing}, ETA ${formatDuration(eta)}${extra}`;
  }

  private draw(now: number): void {
    this.lastDraw = now;
    if (!this.tty) this.stream.write(this.line() + '\n');
    else {
      this.stream.write(`\r\x1b[2K${this.fitted(this.line())}`);
      if (this.stream === process.stderr) setBarLineOpen(true);
    }
  }

  /** The redrawn line cut to the terminal's width: `\r` goes back to the start of its last row only. */
  private fitted(line: string): string {
    const columns = this.stream.columns;
    return columns > 0 && line.length >= columns ? line.slice(0, columns - 1) : line;
  }

  /** Draw the final state and end the line. */
  finish(extra?: string): void {
    if (extra !== undefined) this.extra = extra;
    if (this.tty && this.stream === process.stderr) setBarLineOpen(false);
    if (this.tty) this.stream.write(`\r\x1b[2K${this.line()}\n`);
    else this.stream.write(this.line() + '\n');
  }
}

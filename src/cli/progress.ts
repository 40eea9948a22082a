/**
 * Progress on stderr: one rewritten line on a terminal, plain lines at most every
 * few seconds otherwise, nothing when quiet (--json).
 */
export class Progress {
  private lastPlain = 0;
  private lastLength = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly quiet: boolean, private readonly plainEveryMs = 5000) {}

  update(text: string, force = false): void {
    if (this.quiet) return;
    if (this.tty) {
      const line = text.length < this.lastLength ? text.padEnd(this.lastLength) : text;
      process.stderr.write(`\r${line}`);
      this.lastLength = text.length;
      return;
    }
    const now = Date.now();
    if (force || now - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = now;
      process.stderr.write(`${text}\n`);
    }
  }

  /** Ends the current line and prints a permanent one. */
  log(text: string): void {
    if (this.quiet) return;
    if (this.tty && this.lastLength > 0) process.stderr.write('\n');
    this.lastLength = 0;
    process.stderr.write(`${text}\n`);
  }
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A text bar of `width` cells for a fraction in [0, 1]. */
export function bar(fraction: number, width = 20): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

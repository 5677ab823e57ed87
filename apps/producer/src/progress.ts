/**
 * Progress of an import on stderr: a bar on a terminal (cli-progress), a plain line every few
 * seconds otherwise (logs, CI), so stdout stays free for `--json`.
 */
import { SingleBar } from 'cli-progress';
import type { ImportProgress } from './import.ts';

export interface ProgressView {
  update(p: ImportProgress): void;
  stop(): void;
}

export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  const started = Date.now();
  const rate = (rows: number) => Math.round(rows / Math.max(0.001, (Date.now() - started) / 1000));
  if (stream.isTTY) {
    const bar = new SingleBar({
      stream,
      format: '{bar} {percentage}% | {mb} MB | rows {rows} | accepted {accepted} | rejected {rejected} | {rate} rows/s',
      hideCursor: true,
      etaBuffer: 50,
    });
    let startedBar = false;
    return {
      update(p) {
        const total = p.totalBytes ?? Math.max(p.bytes, 1);
        const payload = { rows: p.rows, accepted: p.accepted, rejected: p.rejected, rate: rate(p.rows), mb: (p.bytes / 1e6).toFixed(1) };
        if (!startedBar) {
          bar.start(total, p.bytes, payload);
          startedBar = true;
        } else bar.update(p.bytes, payload);
      },
      stop() {
        if (startedBar) bar.stop();
      },
    };
  }
  let last = 0;
  return {
    update(p) {
      if (Date.now() - last < 2000) return;
      last = Date.now();
      const pct = p.totalBytes === undefined ? '' : ` ${Math.floor((100 * p.bytes) / Math.max(1, p.totalBytes))}%`;
      stream.write(`import:${pct} rows ${p.rows}, accepted ${p.accepted}, rejected ${p.rejected}, ${rate(p.rows)} rows/s\n`);
    },
    stop() {
      // Nothing to clear.
    },
  };
}

/** Peak memory of a child process, for tests and benchmarks that bound it (Linux /proc). */
import { readFileSync } from 'node:fs';

/** The peak resident set of a running process in MB (VmHWM), or 0 once it has exited. */
export function peakRssMb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0; // it has just exited
  }
}

/** Samples a process's peak every `everyMs` until `stop()`, which returns the highest seen, in MB. */
export function followPeakRss(pid: number, everyMs: number): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, peakRssMb(pid));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

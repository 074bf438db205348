/**
 * Training progress: a redrawn bar on a terminal, plain lines otherwise (CI logs, files), so the
 * same run reads well in both. Callers embedding the pipeline get the same events via onProgress.
 */

export interface ProgressEvent {
  stage: "data" | "train" | "account" | "evaluate";
  step?: number;
  totalSteps?: number;
  epoch?: number;
  loss?: number;
  samplesPerSec?: number;
  etaSec?: number;
  epsilon?: number;
  message?: string;
}

export type ProgressSink = (e: ProgressEvent) => void;

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}

export function formatProgress(e: ProgressEvent): string {
  if (e.message) return `[${e.stage}] ${e.message}`;
  const parts = [`[${e.stage}]`];
  if (e.step !== undefined) parts.push(`step ${e.step}${e.totalSteps ? `/${e.totalSteps}` : ""}`);
  if (e.epoch !== undefined) parts.push(`epoch ${e.epoch}`);
  if (e.loss !== undefined) parts.push(`loss ${e.loss.toFixed(4)}`);
  if (e.samplesPerSec !== undefined) parts.push(`${e.samplesPerSec.toFixed(1)} samples/s`);
  if (e.etaSec !== undefined) parts.push(`ETA ${fmtTime(e.etaSec)}`);
  if (e.epsilon !== undefined) parts.push(`ε ${e.epsilon.toFixed(3)}`);
  return parts.join("  ");
}

/** A sink writing to stderr: a bar on a TTY (throttled to 10 Hz), one line per event otherwise. */
export function consoleProgress(): ProgressSink {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let last = 0;
  let barOpen = false;
  return (e) => {
    const text = formatProgress(e);
    if (!tty) {
      // Plain mode: log every message and about every 10th step, so logs stay readable.
      const every = e.totalSteps ? Math.max(1, Math.round(e.totalSteps / 20)) : 10;
      if (e.message || e.step === undefined || e.step % every === 0 || e.step === e.totalSteps) {
        Deno.stderr.writeSync(enc.encode(text + "\n"));
      }
      return;
    }
    if (e.message || e.step === undefined) {
      Deno.stderr.writeSync(enc.encode((barOpen ? "\n" : "") + text + "\n"));
      barOpen = false;
      return;
    }
    const now = performance.now();
    if (now - last < 100 && e.step !== e.totalSteps) return;
    last = now;
    const width = 24;
    const frac = e.totalSteps ? Math.min(1, e.step / e.totalSteps) : 0;
    const filled = Math.round(frac * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${bar} ${text}`));
    barOpen = true;
    if (e.step === e.totalSteps) {
      Deno.stderr.writeSync(enc.encode("\n"));
      barOpen = false;
    }
  };
}

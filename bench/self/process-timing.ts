/**
 * Wall time of fresh Node processes, measured the way a cold start or a person at a
 * terminal meets them: each run is a new process; runs of every subject are shuffled
 * together (and with the baseline) so drift on a shared machine falls on all alike;
 * the median is reported.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface Subject {
  readonly id: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

export interface Timing {
  readonly id: string;
  readonly runs: number;
  /** Wall time of the whole process, as the parent saw it. */
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /**
   * CPU time (user + system) the process reported of itself, when it prints
   * `{"cpuMs": …}` as its last line (see CPU_REPORT): steadier than wall time on a
   * shared machine, where other work delays a process without making it cost more.
   */
  readonly medianCpuMs?: number;
}

/** Code a Node subject appends to print its own CPU time when it is done. */
export const CPU_REPORT = 'const __u = process.cpuUsage(); process.stdout.write(`\\n${JSON.stringify({ cpuMs: (__u.user + __u.system) / 1000 })}\\n`);';

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A deterministic shuffle (mulberry32), so a run can be repeated. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function timeProcesses(subjects: readonly Subject[], runs: number, seed = 1): Timing[] {
  const samples = new Map<string, number[]>(subjects.map((s) => [s.id, []]));
  const cpu = new Map<string, number[]>(subjects.map((s) => [s.id, []]));
  const order = shuffled(
    subjects.flatMap((s) => Array.from({ length: runs }, () => s)),
    seed,
  );
  for (const subject of order) {
    const started = performance.now();
    const result = spawnSync(subject.command, subject.args, { env: subject.env, cwd: subject.cwd, encoding: 'utf8' });
    const elapsed = performance.now() - started;
    if (result.status !== 0) {
      throw new Error(`${subject.id} exited with ${result.status}: ${(result.stderr || result.stdout).slice(0, 800)}`);
    }
    samples.get(subject.id)!.push(elapsed);
    const last = result.stdout.trim().split('\n').at(-1) ?? '';
    if (last.startsWith('{"cpuMs"')) cpu.get(subject.id)!.push((JSON.parse(last) as { cpuMs: number }).cpuMs);
  }
  return subjects.map((s) => {
    const values = samples.get(s.id)!;
    const cpuValues = cpu.get(s.id)!;
    return {
      id: s.id,
      runs: values.length,
      medianMs: round(median(values)),
      minMs: round(Math.min(...values)),
      maxMs: round(Math.max(...values)),
      ...(cpuValues.length === values.length ? { medianCpuMs: round(median(cpuValues)) } : {}),
    };
  });
}

export function round(ms: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(ms * f) / f;
}

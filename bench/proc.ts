import { readFile, writeFile } from 'node:fs/promises';

/** Linux /proc readings the benches print beside their timings. */

const TICK = 100; // CLK_TCK on Linux

/** The fields of /proc/<pid>/stat after the command name: index 0 is field 3 (state). */
async function statFields(pid: number | 'self'): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of a process, in seconds (its threads included). */
export async function cpuSeconds(pid: number): Promise<number> {
  const f = await statFields(pid);
  return (Number(f[11]) + Number(f[12])) / TICK;
}

/**
 * cutime + cstime of this process: the CPU seconds of its children that have exited and been
 * waited for. The difference around one child's run is that child's CPU (when no other child
 * exits meanwhile).
 */
export async function reapedChildrenCpuSeconds(): Promise<number> {
  const f = await statFields('self');
  return (Number(f[13]) + Number(f[14])) / TICK;
}

async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return m ? Number(m[1]) : 0;
}

/** Resident set size of a process now, in bytes. */
export async function rss(pid: number): Promise<number> {
  return (await statusKiB(pid, 'VmRSS')) * 1024;
}

/**
 * Tracks a process's peak resident set size from now on: resets its high-water mark (writing 5
 * to /proc/<pid>/clear_refs) and polls VmRSS every `everyMs`; `stop()` returns the larger of the
 * polled maximum and VmHWM, in bytes. (VmHWM alone would hold the peak since the process began.)
 */
export async function trackPeakRss(pid: number, everyMs = 50): Promise<{ stop: () => Promise<number> }> {
  const resetHwm = await writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
  let peak = await rss(pid);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rss(pid));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      sampling = false;
      await sampler;
      const hwm = resetHwm ? (await statusKiB(pid, 'VmHWM')) * 1024 : 0;
      return Math.max(peak, hwm);
    },
  };
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

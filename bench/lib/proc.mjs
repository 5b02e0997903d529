// Reads CPU time and memory of a process tree from /proc (Linux only), for per-request server cost.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
  } catch {
    return undefined; // the process is gone
  }
}

/** `root` and every process descended from it (Kamailio forks its workers at start-up). */
export function processTree(root) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  const tree = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    if (readStat(pid) === undefined) continue;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** utime+stime in microseconds, summed over `pids` (threads are included in a process's own figures). */
export function cpuMicros(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat) ticks += stat.utime + stat.stime;
  }
  return (ticks * 1_000_000) / CLK_TCK;
}

/** utime and stime apart, in microseconds, summed over `pids`: user space and the kernel's work for it. */
export function cpuSplitMicros(pids) {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat) {
      user += stat.utime;
      system += stat.stime;
    }
  }
  return { user: (user * 1_000_000) / CLK_TCK, system: (system * 1_000_000) / CLK_TCK };
}

function statusKb(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak RSS (VmHWM) per process, in kB: summed and the largest one. */
export function peakRss(pids) {
  const values = pids.map((pid) => statusKb(pid, 'VmHWM'));
  return { sumKb: values.reduce((a, b) => a + b, 0), maxKb: Math.max(0, ...values) };
}

/** Current RSS (VmRSS), summed over `pids`, in kB. */
export function currentRssKb(pids) {
  return pids.reduce((sum, pid) => sum + statusKb(pid, 'VmRSS'), 0);
}

/**
 * CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal), in microseconds
 * summed over all cores: what other work on the machine took is this minus the measured processes.
 */
export function machineBusyMicros() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1_000_000) / CLK_TCK;
}

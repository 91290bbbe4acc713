/**
 * Calls `onGone` once the process that started this one has exited (`npm start` killed with
 * SIGKILL, a terminal closed): on POSIX an orphan is re-parented, so `process.ppid` (read afresh
 * on every access) changes. Windows does not re-parent; there the check asks whether the first
 * parent is still alive.
 */
export function watchParent(onGone: () => void, everyMs = 1000): () => void {
  const first = process.ppid;
  const alive = () => {
    if (process.platform !== 'win32') return process.ppid === first;
    try {
      process.kill(first, 0);
      return true;
    } catch {
      return false;
    }
  };
  const timer = setInterval(() => {
    if (alive()) return;
    clearInterval(timer);
    onGone();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

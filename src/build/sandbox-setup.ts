/**
 * The shell script that prepares a sandbox inside its fresh namespaces (user, mount, pid, uts,
 * ipc, net) and then replaces the root with pivot_root, so nothing of the host's file system is
 * reachable afterwards (chroot alone can be escaped by a process that is root in its namespace).
 * It runs as the namespace's root (a host id from the build's private range) with host tools,
 * and gets its settings from the environment: no build-provided text is ever part of it.
 * SANDBOX_WAIT runs first: it waits until the builder has mapped the namespace's ids, then execs
 * the setup, so the setup starts as the namespace's root with its capabilities (an exec before
 * the mapping would have dropped them). The namespace's first process dies with unshare (so
 * a killed builder leaves no build behind: the pid namespace ends with it).
 *
 *   SB_MODE       image: the new root is SB_ROOT (a rootfs); tools: a tmpfs with the host's /usr
 *                 read-only and the build's work folder at /work
 *   SB_ROOT       image: the rootfs; tools: an empty folder to mount the tmpfs on
 *   SB_WORK       tools: the build's work folder
 *   SB_READONLY   1: the new root is read-only (%test)
 *   SB_RESOLV     a file to bind over /etc/resolv.conf (network builds)
 *   SB_HOSTNAME   the sandbox's host name
 *   SB_UMOUNT     a static busybox on the host (busybox-static), to unmount the old root
 */
export const SANDBOX_SETUP = String.raw`set -e
mount --make-rprivate /
R="$SB_ROOT"
if [ "$SB_MODE" = tools ]; then
  mount -t tmpfs -o mode=0755,size=16m shelf-tools "$R"
  for d in bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
    elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --rbind -o ro "/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d"; fi
  done
  mkdir "$R/usr" "$R/work" "$R/proc" "$R/dev" "$R/tmp" "$R/etc"
  mount --rbind "/usr" "$R/usr"; mount -o remount,bind,ro "$R/usr"
  mount --bind "$SB_WORK" "$R/work"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
  echo 'root:x:0:' > "$R/etc/group"
else
  mount --bind "$R" "$R"
  for d in proc dev tmp; do [ -d "$R/$d" ] && [ ! -L "$R/$d" ] || { echo "FATAL: /$d in the image is not a folder" >&2; exit 112; }; done
fi
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o mode=0755,nosuid,size=1m shelf-dev "$R/dev"
for d in null zero full random urandom tty; do : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o nosuid,nodev shelf-shm "$R/dev/shm"
mount -t tmpfs -o nosuid,nodev shelf-tmp "$R/tmp"
if [ -n "$SB_RESOLV" ] && [ -d "$R/etc" ] && [ ! -L "$R/etc" ]; then
  [ -e "$R/etc/resolv.conf" ] || : > "$R/etc/resolv.conf"
  mount --bind "$SB_RESOLV" "$R/etc/resolv.conf"
fi
hostname "$SB_HOSTNAME"
if [ "$SB_READONLY" = 1 ]; then mount -o remount,bind,ro "$R"; fi
cd "$R"
O="tmp/.shelf-oldroot"
mkdir "$O"
pivot_root . "$O"
cd /
# Host tools are only reachable through the old root now: a static umount detaches it.
"/$O$SB_UMOUNT" umount -l "/$O"
unset SB_MODE SB_ROOT SB_WORK SB_READONLY SB_RESOLV SB_HOSTNAME SB_SETUP SB_UMOUNT R O d
exec "$@"
`;

export const SANDBOX_WAIT = 'read -r go && [ "$go" = go ] && exec setpriv --pdeathsig SIGKILL /bin/sh -c "$SB_SETUP" "$0" "$@"; exit 111';
